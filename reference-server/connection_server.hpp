// ConnectionServer: cpp-httplib's Server with its own per-connection loop.
//
// cpp-httplib serves each accepted socket on a pool thread, in a keep-alive
// loop it keeps private. We replace that loop (the virtual
// process_and_close_socket, calling the protected process_request) to get what
// the stock loop cannot give:
//   - the socket of the connection a handler is running on (current_socket()),
//     so a streamed response can notice at once that its client went away;
//   - shutdown that closes idle keep-alive connections immediately instead of
//     letting each wait out its keep-alive timeout, while requests in flight
//     finish and answer with "Connection: close";
//   - a read buffer kept for the whole connection (pipelined requests are not
//     lost) and reads/writes that try the socket before polling it.
//
// Thread safety: begin_shutdown(), abort_connections() and open_connections()
// may be called from any thread; the httplib::Server setters must be called
// before listening, as usual.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <set>

#include <httplib.h>

namespace ordinaut_server {

class ConnectionServer : public httplib::Server {
 public:
  ConnectionServer();
  ~ConnectionServer() override;
  ConnectionServer(const ConnectionServer&) = delete;
  ConnectionServer& operator=(const ConnectionServer&) = delete;

  /// Stops accepting, closes idle connections now and marks the rest to close
  /// after their current response. Idempotent.
  void begin_shutdown();

  /// Shuts down the sockets of every connection still open (the drain timed
  /// out): blocked reads and writes fail, so their threads return.
  void abort_connections();

  std::size_t open_connections() const;

  /// The socket of the connection the calling thread serves; -1 when the
  /// thread is not serving one.
  static int current_socket() noexcept;

 private:
  bool process_and_close_socket(socket_t sock) override;
  // Waits until a request's first bytes are readable. False on keep-alive
  // timeout, peer close or shutdown.
  bool wait_for_request(int sock, bool buffered) const;

  int wake_fd_ = -1;  // eventfd, readable once shutdown began
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::set<int> sockets_;
};

}  // namespace ordinaut_server
