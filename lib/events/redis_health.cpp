// Health of the Redis bus and its subscriptions (see redis_health.hpp).
#include "events/redis_health.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/strings.hpp"

namespace ordinaut::detail::redis {

namespace {

int rank(const Verdict& v) {
  const std::string_view s = v.status;
  return s == "ok" ? 0 : s == "degraded" ? 1 : 2;
}

JsonValue time_or_null(std::int64_t ms, Json::AllocatorType& a) {
  return ms == 0 ? JsonValue() : JsonValue(detail::rfc3339(ms).c_str(), a);
}

}  // namespace

Verdict judge(std::int64_t down_since_ms, const std::string& why, const RedisBusOptions& options, std::int64_t now_ms) {
  if (down_since_ms == 0) return {};
  Verdict v;
  v.down_since_ms = down_since_ms;
  v.status = now_ms - down_since_ms >= options.unhealthy_after.count() ? "unhealthy" : "degraded";
  v.reason = fmt::format("event bus unreachable since {} ({})", detail::rfc3339(down_since_ms), why);
  return v;
}

const Verdict& worse(const Verdict& a, const Verdict& b) {
  if (rank(a) != rank(b)) return rank(a) > rank(b) ? a : b;
  if (a.down_since_ms != 0 && (b.down_since_ms == 0 || a.down_since_ms <= b.down_since_ms)) return a;
  return b;
}

Verdict judge_subscription(const RedisSubscription& s, const Link::Availability& bus, const RedisBusOptions& options,
                           std::int64_t now_ms) {
  std::int64_t since = 0;
  std::string why;
  {
    std::lock_guard lock(s.stats_mutex);
    if (s.unreadable_since_ms != 0) {
      since = s.unreadable_since_ms;
      why = s.last_error.empty() ? "cannot read" : s.last_error;
    } else if (s.read_started != Clock::time_point{} &&
               Clock::now() - s.read_started > options.block_timeout + Link::kProbeOverdue) {
      since = s.read_started_ms;
      why = "a read is overdue: Redis does not answer";
    }
  }
  Verdict own = judge(since, why, options, now_ms);
  const Verdict link = judge(bus.up                   ? 0
                             : bus.down_since_ms != 0 ? bus.down_since_ms
                                                      : now_ms,
                             bus.reason, options, now_ms);
  return worse(own, link);
}

void add_verdict(JsonValue& doc, const Verdict& verdict, Json::AllocatorType& a) {
  doc.AddMember("status", JsonValue(verdict.status, a), a);
  doc.AddMember("reason", verdict.reason.empty() ? JsonValue() : JsonValue(verdict.reason.c_str(), a), a);
  doc.AddMember("unreachable_since", time_or_null(verdict.down_since_ms, a), a);
}

JsonValue describe_subscription(const RedisSubscription& s, const Verdict& verdict, Json::AllocatorType& a) {
  JsonValue o(rapidjson::kObjectType);
  o.AddMember("id", s.id, a);
  o.AddMember("pattern", JsonValue(s.pattern.c_str(), a), a);
  o.AddMember("group", JsonValue(s.group_label.c_str(), a), a);
  o.AddMember("consumer", JsonValue(s.consumer.c_str(), a), a);
  o.AddMember("redis_group", JsonValue(s.group.c_str(), a), a);
  add_verdict(o, verdict, a);
  JsonValue streams(rapidjson::kArrayType);
  std::int64_t pending = 0, lag = 0;
  bool lag_known = true;
  {
    std::lock_guard lock(s.stats_mutex);
    for (const auto& st : s.stats) {
      JsonValue x(rapidjson::kObjectType);
      x.AddMember("stream", JsonValue(st.stream.c_str(), a), a);
      x.AddMember("topic", JsonValue(st.topic.c_str(), a), a);
      x.AddMember("pending", st.pending, a);
      x.AddMember("lag", st.lag < 0 ? JsonValue() : JsonValue(st.lag), a);
      x.AddMember("last_delivered_id", JsonValue(st.last_delivered_id.c_str(), a), a);
      streams.PushBack(x, a);
      pending += st.pending;
      if (st.lag < 0) lag_known = false;
      lag += std::max<std::int64_t>(st.lag, 0);
    }
    o.AddMember("last_read", time_or_null(s.last_read_ms, a), a);
    o.AddMember(
        "read_age_ms",
        s.last_read_ms == 0 ? JsonValue() : JsonValue(std::max<std::int64_t>(detail::now_ms() - s.last_read_ms, 0)), a);
    o.AddMember("connected", s.connected, a);
    o.AddMember("reconnects", s.reconnects, a);
    o.AddMember("last_error", s.last_error.empty() ? JsonValue() : JsonValue(s.last_error.c_str(), a), a);
  }
  o.AddMember("streams", streams, a);
  o.AddMember("pending", pending, a);
  o.AddMember("lag", lag_known ? JsonValue(lag) : JsonValue(), a);
  o.AddMember("delivered", s.totals.delivered.load(), a);
  o.AddMember("failed", s.totals.failed.load(), a);
  o.AddMember("retried", s.totals.retried.load(), a);
  o.AddMember("reclaimed", s.totals.reclaimed.load(), a);
  o.AddMember("dropped", s.totals.dropped.load(), a);
  o.AddMember("rejected", s.totals.rejected_invalid_json.load() + s.totals.rejected_no_payload.load(), a);
  o.AddMember("group_recreated", s.totals.group_recreated.load(), a);
  return o;
}

}  // namespace ordinaut::detail::redis
