// The Redis protocol as the Redis bus speaks it (internal): owned replies and
// connections, commands written straight into RESP, and pipelined round trips.
//
// Owns: the byte encoding of commands (Wire, Command) and reading replies
// back in order (pipeline, run). Calls only hiredis, and only what is the same
// in hiredis 0.14 and 1.x (redisAppendFormattedCommand, redisGetReply, the
// RESP2 REDIS_REPLY_* types).
//
// Locking: none. A redisContext is used by one thread at a time; the caller
// owns it for the whole call.
#pragma once

#include <sys/time.h>

#include <charconv>
#include <chrono>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <hiredis/hiredis.h>

namespace ordinaut::detail::redis {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* c) const {
    if (c != nullptr) redisFree(c);
  }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

inline timeval to_timeval(milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

/// The reply's string (status, error or bulk); empty for other types.
inline std::string_view text(const redisReply* r) {
  if (r == nullptr || r->str == nullptr) return {};
  return {r->str, r->len};
}

inline bool is_error(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_ERROR; }
inline bool is_array(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_ARRAY; }

/// Commands in the Redis protocol (RESP), written straight into one buffer:
/// cheaper than hiredis' formatting per command, and a whole pipeline is
/// handed to hiredis at once (redisAppendFormattedCommand).
class Wire {
 public:
  void begin(std::size_t argc) {
    out_ += '*';
    number(argc);
    out_ += "\r\n";
    ++commands_;
  }
  Wire& arg(std::string_view a) {
    out_ += '$';
    number(a.size());
    out_ += "\r\n";
    out_.append(a);
    out_ += "\r\n";
    return *this;
  }
  Wire& command(std::initializer_list<std::string_view> args) {
    begin(args.size());
    for (auto a : args) arg(a);
    return *this;
  }
  void reserve(std::size_t bytes) { out_.reserve(bytes); }
  const std::string& bytes() const { return out_; }
  std::size_t commands() const { return commands_; }

 private:
  void number(std::size_t n) {
    char digits[24];
    out_.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
  }
  std::string out_;
  std::size_t commands_ = 0;
};

/// One command whose arguments are added one by one.
class Command {
 public:
  Command(std::initializer_list<std::string_view> args) : args_(args) {}
  Command& add(std::string_view a) {
    args_.push_back(a);
    return *this;
  }
  void write_to(Wire& wire) const {
    wire.begin(args_.size());
    for (auto a : args_) wire.arg(a);
  }

 private:
  std::vector<std::string_view> args_;  // borrowed until written
};

/// An I/O failure: the connection is unusable afterwards.
struct IoError {
  std::string message;
};

/// Queues the commands of `wire` on `c` and reads their replies in order (one
/// round trip). Error replies are returned as replies; only I/O failures are
/// errors. Holds a SigpipeGuard for the I/O.
std::variant<std::vector<Reply>, IoError> pipeline(redisContext* c, const Wire& wire);
std::variant<std::vector<Reply>, IoError> pipeline(redisContext* c, const std::vector<Command>& commands);
/// One command, one reply.
std::variant<Reply, IoError> run(redisContext* c, const Command& cmd);

}  // namespace ordinaut::detail::redis
