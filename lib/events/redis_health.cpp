// Health of the Redis bus's subscriptions (see redis_health.hpp).
#include "events/redis_health.hpp"

#include <algorithm>

namespace ordinaut::detail::redis {

JsonValue describe_subscription(const RedisSubscription& s, Json::AllocatorType& a) {
  JsonValue o(rapidjson::kObjectType);
  o.AddMember("id", s.id, a);
  o.AddMember("pattern", JsonValue(s.pattern.c_str(), a), a);
  o.AddMember("group", JsonValue(s.group_label.c_str(), a), a);
  o.AddMember("consumer", JsonValue(s.consumer.c_str(), a), a);
  o.AddMember("redis_group", JsonValue(s.group.c_str(), a), a);
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
  return o;
}

}  // namespace ordinaut::detail::redis
