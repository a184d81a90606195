// Pipelined round trips (see redis_wire.hpp).
#include "events/redis_wire.hpp"

#include "events/sigpipe.hpp"

namespace ordinaut::detail::redis {

std::variant<std::vector<Reply>, IoError> pipeline(redisContext* c, const Wire& wire) {
  SigpipeGuard no_sigpipe;  // a reset connection must not end the process
  if (redisAppendFormattedCommand(c, wire.bytes().data(), wire.bytes().size()) != REDIS_OK) {
    return IoError{c->errstr[0] ? c->errstr : "cannot queue the command"};
  }
  std::vector<Reply> replies;
  replies.reserve(wire.commands());
  for (std::size_t i = 0; i < wire.commands(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
      return IoError{c->errstr[0] ? c->errstr : "connection closed"};
    }
    replies.emplace_back(static_cast<redisReply*>(raw));
  }
  return replies;
}

std::variant<std::vector<Reply>, IoError> pipeline(redisContext* c, const std::vector<Command>& commands) {
  Wire wire;
  for (const auto& cmd : commands) cmd.write_to(wire);
  return pipeline(c, wire);
}

std::variant<Reply, IoError> run(redisContext* c, const Command& cmd) {
  Wire wire;
  cmd.write_to(wire);
  auto r = pipeline(c, wire);
  if (auto* io = std::get_if<IoError>(&r)) return std::move(*io);
  return std::move(std::get<0>(r)[0]);
}
}  // namespace ordinaut::detail::redis
