// What health() and subscriber_health() of the Redis bus report (internal).
//
// Owns: the JSON shape of the bus's and each subscription's health, and how
// "status" is derived from what happened: "ok" while reads succeed;
// "degraded" from the first failed read or connection, or while a read or the
// monitor's PING is overdue (Redis stopped answering); "unhealthy" once that
// lasted unhealthy_after.
// Calls: nothing but the figures it is handed (Link::availability(), the
// subscription's state).
//
// Locking: describe_subscription takes the subscription's stats_mutex for
// the copy of its figures; the caller holds no lock of the subscription.
#pragma once

#include <string>

#include "events/redis_link.hpp"
#include "events/redis_subscription.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut::detail::redis {

struct Verdict {
  const char* status = "ok";  // "ok" | "degraded" | "unhealthy"
  std::string reason;         // empty when ok
  std::int64_t down_since_ms = 0;
};

/// The verdict for something that cannot reach Redis since `down_since_ms`
/// (0: it can) for `why`.
Verdict judge(std::int64_t down_since_ms, const std::string& why, const RedisBusOptions& options, std::int64_t now_ms);
/// The worse of two verdicts (the earlier one when equally bad).
const Verdict& worse(const Verdict& a, const Verdict& b);

/// The verdict of one subscription, given the bus's availability.
Verdict judge_subscription(const RedisSubscription& s, const Link::Availability& bus, const RedisBusOptions& options,
                           std::int64_t now_ms);

/// {"id","pattern","group","consumer","redis_group","status","reason",
/// "unreadable_since","last_read","read_age_ms","connected","reconnects","last_error",
/// "streams":[...],"pending","lag","delivered","failed","retried","reclaimed",
/// "dropped","rejected","group_recreated"} of one subscription.
JsonValue describe_subscription(const RedisSubscription& s, const Verdict& verdict, Json::AllocatorType& a);

/// Adds "status", "reason" and "unreachable_since" to `doc`.
void add_verdict(JsonValue& doc, const Verdict& verdict, Json::AllocatorType& a);

}  // namespace ordinaut::detail::redis
