// RateLimiter (rate_limiter.hpp).
#include "host/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

namespace ordinaut::detail {

namespace {
double burst_of(double rate, double burst) { return burst > 0 ? burst : std::max(1.0, 2 * rate); }
}  // namespace

RateLimiter::RateLimiter(RateLimitOptions options) : options_(std::move(options)) {
  enabled_ = options_.per_principal_rps > 0;
  for (const auto& [id, limit] : options_.per_extension) enabled_ = enabled_ || limit.first > 0;
}

RateLimiter::Decision RateLimiter::take_one(const std::string& key, double rate, double burst,
                                            std::chrono::steady_clock::time_point now) {
  Shard& shard = shards_[std::hash<std::string>{}(key) % kShards];
  std::lock_guard lock(shard.mutex);
  auto it = shard.buckets.find(key);
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= kMaxBucketsPerShard) {
      // Drop buckets that have refilled (their principals are idle); if none
      // has, drop one anyway: a full shard must not refuse new principals.
      std::erase_if(shard.buckets, [&](const auto& kv) {
        return kv.second.tokens + std::chrono::duration<double>(now - kv.second.last).count() * rate >= burst;
      });
      if (shard.buckets.size() >= kMaxBucketsPerShard) shard.buckets.erase(shard.buckets.begin());
    }
    it = shard.buckets.emplace(key, Bucket{burst, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = std::min(burst, b.tokens + std::chrono::duration<double>(now - b.last).count() * rate);
  b.last = now;
  Decision d;
  d.limit = burst;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    d.allowed = true;
  } else {
    d.allowed = false;
    d.retry_after_s = (1 - b.tokens) / rate;
  }
  d.remaining = std::floor(b.tokens);
  d.reset_s = (burst - b.tokens) / rate;
  return d;
}

RateLimiter::Decision RateLimiter::take(std::string_view key, std::string_view extension_id) {
  const auto now = std::chrono::steady_clock::now();
  Decision result;
  if (options_.per_principal_rps > 0) {
    result = take_one(std::string(key), options_.per_principal_rps,
                      burst_of(options_.per_principal_rps, options_.burst), now);
    result.scope = "principal";
    if (!result.allowed) return result;
  }
  for (const auto& [id, limit] : options_.per_extension) {
    if (id != extension_id || limit.first <= 0) continue;
    std::string ext_key = std::string(key);
    ext_key += '\x1f';
    ext_key += extension_id;
    Decision e = take_one(ext_key, limit.first, burst_of(limit.first, limit.second), now);
    e.scope = "extension";
    // Report the tighter of the two.
    if (!e.allowed || result.limit == 0 || e.remaining < result.remaining) result = e;
    break;
  }
  return result;
}

}  // namespace ordinaut::detail
