// The reference server's request reader (reference-server/request_reader.*):
// the request line, header and body-framing checks every connection's bytes go
// through before anything else sees them.
//
// Input: one control byte, then the bytes a client sent. The control byte's
// low four bits are a split size (0: one piece only); the bytes are fed once in
// one piece and once in pieces of that size, as a socket may hand them over.
// Requests that follow a finished one on the same connection (pipelining) are
// read too, until the bytes end or the reader refuses something.
//
// Invariants: no crash; feed() never claims more bytes than it was given, and
// it takes every byte unless a request ended or was refused; the bytes held for
// an incomplete head stay within the head limits; a refusal is one of the
// documented statuses with a code, a message and an error shape that is strict
// JSON; a finished request has a token method, a path without control
// characters and a body within the limit; and the outcome (every request and
// refusal) does not depend on how the bytes were split.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "ordinaut/http.hpp"
#include "request_reader.hpp"

namespace {

constexpr std::size_t kMaxBody = 1024;
// Request line and header lines with their line ends, plus the one byte of a
// pending CR each limit allows for a line still being read.
constexpr std::size_t kMaxHeld = ordinaut_server::kMaxRequestLine + ordinaut_server::kMaxHeaderBytes +
                                 2 * (ordinaut_server::kMaxHeaders + 2) + 4;

bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c != '\0' && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

void check_request(const ordinaut::Request& r) {
  fuzz::require(!r.method.empty(), "a request has a method");
  for (char c : r.method) fuzz::require(is_tchar(static_cast<unsigned char>(c)), "the method is a token");
  fuzz::require(!r.path.empty() && (r.path.front() == '/' || r.path == "*"), "the path is absolute (or *)");
  for (std::string_view part : {std::string_view(r.path), std::string_view(r.query_string)}) {
    for (char c : part) {
      const auto u = static_cast<unsigned char>(c);
      fuzz::require(u > 0x20 && u != 0x7f, "path and query hold no space or control character");
    }
  }
  fuzz::require(r.body.size() <= kMaxBody, "the body is within the limit");
}

void check_refusal(const ordinaut_server::RequestError& e) {
  const int s = e.status;
  fuzz::require(s == 400 || s == 413 || s == 414 || s == 431 || s == 501 || s == 505, "a documented status");
  fuzz::require(!e.code.empty() && !e.message.empty(), "a refusal has a code and a message");
  if (!e.details_json.empty()) fuzz::require_strict_json(e.details_json, "the details are strict JSON");
  const ordinaut::Response shape = ordinaut::Response::error(s, e.code, e.message, e.details_json);
  fuzz::require_strict_json(shape.body, "the error shape is strict JSON");
}

// Feeds `bytes` in pieces of `step` (0: one piece) and returns what happened:
// one line per finished request or refusal, and how the bytes ended.
std::string read_all(std::string_view bytes, std::size_t step) {
  ordinaut_server::RequestReader reader(kMaxBody);
  std::string outcome;
  std::size_t at = 0;
  while (at < bytes.size()) {
    const std::size_t piece = step == 0 ? bytes.size() - at : std::min(step, bytes.size() - at);
    const std::size_t used = reader.feed(bytes.data() + at, piece);
    fuzz::require(used <= piece, "feed() uses at most the bytes it was given");
    at += used;
    fuzz::require(reader.buffered() <= kMaxHeld, "an incomplete head stays within the head limits");
    switch (reader.phase()) {
      case ordinaut_server::RequestReader::Phase::done: {
        const bool keep_alive = reader.keep_alive();
        const ordinaut::Request r = reader.take();
        check_request(r);
        fuzz::require(reader.phase() == ordinaut_server::RequestReader::Phase::idle, "take() readies the next request");
        outcome += r.method + ' ' + r.path + '?' + r.query_string + ' ' + std::to_string(r.body.size()) + ':' +
                   r.body + (keep_alive ? " keep\n" : " close\n");
        break;
      }
      case ordinaut_server::RequestReader::Phase::failed:
        check_refusal(reader.error());
        return outcome + "refused " + std::to_string(reader.error().status) + ' ' + reader.error().code + ' ' +
               reader.error().message + '\n';
      default:
        fuzz::require(used == piece, "a reader still reading takes every byte");
        break;
    }
  }
  return outcome + "end\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t step = data[0] & 0x0f;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string whole = read_all(bytes, 0);
  if (step != 0) fuzz::require(read_all(bytes, step) == whole, "the outcome does not depend on how bytes arrive");
  return 0;
}
