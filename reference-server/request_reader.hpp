// RequestReader: reads HTTP/1.x requests from a connection's bytes as they
// arrive, enforcing every limit as soon as the bytes that break it are seen.
//
// The reader is fed whatever the socket gave (feed()) and says when a whole,
// checked request is ready (head and body), or which error to answer. It never
// buffers more than the limits allow: the head is held until it is complete
// (at most the request line + header limits), the body goes straight into the
// request (at most --max-body bytes, also for chunked bodies).
//
// Rules (RFC 9112), each answered with the error shape and a closed connection:
//   414  request line longer than kMaxRequestLine
//   431  a header line longer than kMaxHeaderLine, all header lines together
//        longer than kMaxHeaderBytes, or more than kMaxHeaders fields
//   400  bad request line, bad header line (no colon, space before the colon,
//        control characters), obsolete line folding, bare CR, a Content-Length
//        that is not all digits, more than one Content-Length, Content-Length
//        with Transfer-Encoding, missing or repeated Host on HTTP/1.1, bad
//        chunk framing
//   413  Content-Length over the body limit (before any 100 Continue), or a
//        chunked body growing past it
//   501  a Transfer-Encoding other than "chunked"
//   505  an HTTP version other than 1.0 and 1.1
//
// Not thread safe: one reader per connection, used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ordinaut/http.hpp"

namespace ordinaut_server {

inline constexpr std::size_t kMaxRequestLine = 8 * 1024;
inline constexpr std::size_t kMaxHeaderLine = 8 * 1024;
inline constexpr std::size_t kMaxHeaderBytes = 32 * 1024;
inline constexpr std::size_t kMaxHeaders = 100;
inline constexpr std::size_t kMaxChunkLine = 1024;  // chunk size and extensions

/// Why a request was refused: status, error code and message for the error
/// shape, and its details (a JSON object text).
struct RequestError {
  int status = 0;
  std::string code;
  std::string message;
  std::string details_json;
};

class RequestReader {
 public:
  enum class Phase {
    idle,     ///< no byte of the next request yet
    head,     ///< reading the request line and headers
    body,     ///< head checked, reading the body
    done,     ///< a whole request is ready: take it with take()
    failed,   ///< error() says what to answer; the connection must close
  };

  explicit RequestReader(std::size_t max_body) : max_body_(max_body) {}

  /// Consumes bytes from `data`; returns how many were used. Stops at the end
  /// of a request (phase done: the rest belongs to the next one) or at an
  /// error (phase failed). Bytes of an incomplete head are kept inside.
  std::size_t feed(const char* data, std::size_t size);

  Phase phase() const noexcept { return phase_; }
  /// True when the head asked for "100 Continue" and no body byte arrived yet.
  bool wants_continue() const noexcept { return phase_ == Phase::body && expect_continue_ && !body_started_; }
  void continue_sent() noexcept { expect_continue_ = false; }
  const RequestError& error() const noexcept { return error_; }
  /// HTTP/1.1 without "Connection: close", or HTTP/1.0 with "keep-alive".
  bool keep_alive() const noexcept { return keep_alive_; }
  bool http10() const noexcept { return http10_; }

  /// The finished request (phase done); the reader is then ready for the
  /// next one.
  ordinaut::Request take();

  /// Bytes held for an incomplete head (0 when idle).
  std::size_t buffered() const noexcept { return head_.size(); }
  /// Frees buffers kept for reuse (after a large request).
  void trim();

 private:
  bool fail(int status, std::string_view code, std::string message, std::string details_json = {});
  std::size_t feed_head(const char* data, std::size_t size);
  bool check_head_line(std::size_t begin, std::size_t end);
  bool parse_head();
  std::size_t feed_body(const char* data, std::size_t size);
  std::size_t feed_chunked(const char* data, std::size_t size);
  void reset();

  const std::size_t max_body_;
  Phase phase_ = Phase::idle;
  RequestError error_;

  // Head: raw bytes until the blank line.
  std::string head_;
  std::size_t line_start_ = 0;   // offset in head_ of the line being read
  std::size_t header_lines_ = 0;
  std::size_t header_bytes_ = 0;
  bool request_line_done_ = false;

  // The request being built.
  ordinaut::Request request_;
  bool keep_alive_ = true;
  bool http10_ = false;
  bool expect_continue_ = false;
  bool body_started_ = false;

  // Body.
  enum class ChunkState { size, data, data_crlf, trailer };
  bool chunked_ = false;
  std::uint64_t remaining_ = 0;   // Content-Length bytes left, or bytes left in the chunk
  ChunkState chunk_state_ = ChunkState::size;
  std::string chunk_line_;        // chunk-size line or trailer line being read
  std::size_t trailer_bytes_ = 0;
};

}  // namespace ordinaut_server
