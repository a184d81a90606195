// What health() and subscriber_health() of the Redis bus report (internal).
//
// Owns: the JSON shape of the bus's and each subscription's health.
// Calls: nothing but the figures it is handed.
//
// Locking: describe_subscription takes the subscription's stats_mutex for
// the copy of its figures; the caller holds no lock of the subscription.
#pragma once

#include "events/redis_subscription.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut::detail::redis {

/// {"id","pattern","group","consumer","redis_group","connected","reconnects",
/// "last_error","streams":[...],"pending","lag","delivered","failed",
/// "retried","reclaimed","dropped"} of one subscription.
JsonValue describe_subscription(const RedisSubscription& s, Json::AllocatorType& a);

}  // namespace ordinaut::detail::redis
