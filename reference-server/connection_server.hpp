// ConnectionServer: the reference server's connection layer. An open
// connection costs a file descriptor and a few hundred bytes, not a thread.
//
//   - One epoll instance holds every connection socket (EPOLLONESHOT). The
//     `threads` workers all wait on it: the worker that gets a readable
//     connection reads what is there without blocking, feeds it to the
//     connection's RequestReader (every limit enforced as bytes arrive) and,
//     once a whole checked request is in, runs the handler and writes the
//     response. Then the connection goes back to epoll. No thread waits for
//     a client's bytes: idle keep-alive connections, slow-drip clients and
//     half-sent bodies only sit in epoll.
//   - At most one worker per core runs at a time (more would preempt each
//     other mid-request and stretch the latency tail); a worker whose handler
//     has been busy for 5 ms (sleeping, waiting on I/O) hands its turn on, so
//     slow handlers still get up to `threads` workers.
//   - Writing a response is done by its worker, trying the socket first and
//     waiting at most --write-timeout whenever the client does not take bytes.
//   - A streamed response (Response::stream, a blocking producer) runs on a
//     thread of its own with a small stack, never on a worker; see
//     stream_watcher.hpp for how its client's disconnect is noticed.
//   - A housekeeping thread enforces deadlines (--header-timeout for a whole
//     head, --body-timeout for a whole body, --read-timeout between bytes,
//     --keep-alive-timeout for idle connections): a late request gets 408.
//   - Every error answer (400, 408, 413, 414, 431, 501, 505) has the error
//     shape and closes the connection, so nothing behind a refused request
//     ever runs; the close is lingering (the client reads the answer, not a
//     reset).
//   - The accept loop runs on the thread that calls run().
//
// Thread safety: begin_shutdown(), abort_connections(), open_connections()
// and open_streams() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ordinaut/http.hpp"
#include "request_reader.hpp"
#include "stream_watcher.hpp"

namespace ordinaut_server {

struct ConnectionOptions {
  int threads = 16;
  std::size_t max_body = 1 << 20;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{60000};
  std::chrono::milliseconds read_timeout{30000};
  std::chrono::milliseconds write_timeout{30000};
  std::chrono::milliseconds keep_alive_timeout{30000};
};

struct ConnectionHooks {
  /// Answers a whole, checked request. Runs on a worker thread.
  std::function<ordinaut::Response(ordinaut::Request&)> handle;
  /// A request refused by the connection layer (never reached `handle`).
  std::function<void(const RequestError&, std::string_view remote)> rejected;
  /// Something went wrong that the operator should know (accept failures, a
  /// handler that threw through `handle`).
  std::function<void(std::string_view event, std::string_view message)> error;
};

class ConnectionServer {
 public:
  ConnectionServer(ConnectionOptions options, ConnectionHooks hooks, StreamWatcher& watcher);
  ~ConnectionServer();
  ConnectionServer(const ConnectionServer&) = delete;
  ConnectionServer& operator=(const ConnectionServer&) = delete;

  /// Binds and listens on host:port (port 0: a free one). Returns the port,
  /// or -1 with errno set.
  int bind(const std::string& host, int port);

  /// Accepts and serves until begin_shutdown() and every connection closed.
  /// False when the listener failed on its own.
  bool run();

  /// Stops accepting, closes idle connections now and marks the rest to close
  /// after their current response. Idempotent.
  void begin_shutdown();

  /// Shuts down the sockets of every connection still open (the drain timed
  /// out): blocked reads and writes fail, so their threads return.
  void abort_connections();

  std::size_t open_connections() const noexcept { return connections_.load(); }
  std::size_t open_streams() const noexcept { return stream_threads_.load(); }
  /// The file descriptors this process may open (RLIMIT_NOFILE soft limit).
  std::size_t max_files() const noexcept { return max_files_; }

  struct Conn;  // implementation details
  struct Slot;
  struct Worker;

 private:
  enum class Served { rearm, closed, handed_off };

  void accept_loop();
  void add_connection(int fd);
  void worker_loop(Worker& me);
  void acquire_turn();
  void release_turn();
  void release_blocked_turns(std::int64_t now);
  void housekeeping_loop();
  Slot* slot_of(int fd) const noexcept;
  Slot* make_slot(int fd);

  void serve(Conn& c, char* scratch, std::size_t scratch_size);
  Served process(Conn& c, const char* data, std::size_t size);
  Served respond(Conn& c, ordinaut::Request& request, bool keep_alive, bool http10);
  Served start_stream(Conn& c, ordinaut::Response& response, bool close, bool http10, std::string& head);
  void finish_stream(Conn& c, bool reusable);
  Served send_error(Conn& c, const RequestError& error);
  Served linger(Conn& c);
  void rearm(Conn& c);
  void close_connection(Conn& c);
  void close_locked(Slot& slot);
  void expire_locked(Slot& slot, std::int64_t now_ms);
  void connection_closed();

  const ConnectionOptions options_;
  const ConnectionHooks hooks_;
  StreamWatcher& watcher_;

  std::mutex listen_mutex_;
  int listen_fd_ = -1;  // guarded by listen_mutex_ once run() began
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::size_t max_files_ = 0;

  // Slots by file descriptor, in chunks allocated on first use.
  static constexpr std::size_t kChunk = 1024;
  std::unique_ptr<std::atomic<Slot*>[]> chunks_;
  std::size_t chunk_count_ = 0;
  std::mutex chunk_mutex_;

  std::atomic<bool> stopping_{false};
  std::atomic<bool> quit_{false};
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> stream_threads_{0};
  std::atomic<std::size_t> closed_since_trim_{0};

  std::mutex state_mutex_;  // with state_cv_: connection count changes, housekeeping wake-ups
  std::condition_variable state_cv_;

  std::mutex run_mutex_;  // with run_cv_: turns to run (see acquire_turn)
  std::condition_variable run_cv_;
  int running_ = 0;
  int run_limit_ = 2;
  std::vector<std::unique_ptr<Worker>> worker_states_;
  std::vector<std::thread> workers_;
  std::thread housekeeper_;
};

}  // namespace ordinaut_server
