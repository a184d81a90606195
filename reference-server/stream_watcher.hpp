// StreamWatcher: runs streamed responses and keeps them honest.
//
// A producer (ordinaut::StreamProducer) runs on a thread of its own (see
// connection_server.hpp) for as long as it streams. One watcher thread,
// started with the first stream, serves every open stream:
//   - it polls each stream's socket for the peer's close (POLLRDHUP), so
//     is_open() turns false as soon as the client disconnects, not only after
//     a failed write;
//   - for text/event-stream responses it writes the SSE comment
//     ": keepalive\n\n" when the producer has written nothing for the
//     keep-alive interval, so proxies and clients keep the stream open and a
//     dead client is found even when the producer is silent.
// Writes of the producer and of the watcher are serialised per stream.
//
// Thread safety: every member is safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ordinaut/http.hpp"

namespace ordinaut_server {

/// Where a stream's bytes go: the connection, framed as the response needs
/// (chunked or not). write() returns false once the client is gone or did not
/// take the bytes within the write timeout.
class BodyWriter {
 public:
  virtual ~BodyWriter() = default;
  virtual bool write(std::string_view data) = 0;
};

class StreamWatcher {
 public:
  /// `keepalive` 0 turns the comments off (disconnects are still watched).
  explicit StreamWatcher(std::chrono::milliseconds keepalive);
  ~StreamWatcher();
  StreamWatcher(const StreamWatcher&) = delete;
  StreamWatcher& operator=(const StreamWatcher&) = delete;

  /// Runs `producer` on the calling thread, writing into `body`, the body of
  /// a response on socket `sock` (-1 when unknown: then only failed writes
  /// reveal a disconnect). `sse` enables keep-alive comments.
  void run(const ordinaut::StreamProducer& producer, BodyWriter& body, int sock, bool sse);

  /// From now on every stream reports is_open() == false (server shutdown).
  void close_all();

  std::size_t open_streams() const;

  struct Stream;  // implementation detail

 private:
  void add(const std::shared_ptr<Stream>& stream);
  void remove(const std::shared_ptr<Stream>& stream);
  void wake() const;
  void loop();

  const std::chrono::milliseconds keepalive_;
  std::atomic<bool> closing_{false};
  std::atomic<bool> quit_{false};
  int wake_fd_ = -1;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Stream>> streams_;
  std::thread thread_;  // started with the first stream
};

}  // namespace ordinaut_server
