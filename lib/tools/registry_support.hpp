// What the tool, resource and prompt registries share: change listeners with
// a generation counter, and the completion cap. Internal to the library.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/resources.hpp"

namespace ordinaut::detail {

// Listeners are called after a change, on the changing thread, outside the
// registry's lock and outside listeners_mutex (a listener may add another).
class ListenerSet {
 public:
  void changed() {
    generation_.fetch_add(1, std::memory_order_acq_rel);
    std::vector<std::function<void()>> copy;
    {
      std::lock_guard lock(listeners_mutex_);
      copy.reserve(listeners_.size());
      for (auto& [id, fn] : listeners_) copy.push_back(fn);
    }
    for (auto& fn : copy) fn();
  }
  std::uint64_t generation_value() const noexcept { return generation_.load(std::memory_order_acquire); }
  std::uint64_t add_listener(std::function<void()> fn) const {
    std::lock_guard lock(listeners_mutex_);
    const std::uint64_t id = next_++;
    listeners_.emplace(id, std::move(fn));
    return id;
  }
  void drop_listener(std::uint64_t id) const {
    std::lock_guard lock(listeners_mutex_);
    listeners_.erase(id);
  }

 private:
  std::atomic<std::uint64_t> generation_{0};
  mutable std::mutex listeners_mutex_;
  mutable std::map<std::uint64_t, std::function<void()>> listeners_;
  mutable std::uint64_t next_ = 1;
};

// Erases the entries of `map` (values: shared_ptr<const Entry>) that `pred`
// selects, under `mutex`; returns how many went. The entries are freed after
// the lock is released: the last reference to one may hold the last lease on
// its owner's code, whose destructors may use the registry.
template <typename Mutex, typename Map, typename Pred>
std::size_t erase_entries(Mutex& mutex, Map& map, Pred&& pred) {
  std::size_t removed = 0;
  std::vector<typename Map::mapped_type> gone;  // destroyed after `lock`
  std::unique_lock lock(mutex);
  for (auto it = map.begin(); it != map.end();) {
    if (pred(*it->second)) {
      gone.push_back(std::move(it->second));
      it = map.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

// A tool or prompt name: 1-128 characters of [A-Za-z0-9_.-], no leading,
// trailing or doubled '.'.
inline bool valid_registry_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 128 || name.front() == '.' || name.back() == '.') return false;
  if (name.find("..") != std::string_view::npos) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Sets (or with a null lease, clears) the lease new entries of `owner` keep
// (ToolRegistry::hold_for_owner and its twins). The previous lease is
// released after the lock.
template <typename Mutex, typename Leases>
void set_lease(Mutex& mutex, Leases& leases, std::string_view owner, std::shared_ptr<const void> lease) {
  std::shared_ptr<const void> previous;  // destroyed after `lock`
  std::unique_lock lock(mutex);
  auto it = leases.find(owner);
  if (it != leases.end()) {
    previous = std::move(it->second);
    if (lease) {
      it->second = std::move(lease);
    } else {
      leases.erase(it);
    }
  } else if (lease) {
    leases.emplace(std::string(owner), std::move(lease));
  }
}

// MCP allows at most 100 values per completion answer.
inline constexpr std::size_t kMaxCompletionValues = 100;

inline Completion make_completion(std::vector<std::string> values) {
  Completion c;
  c.total = values.size();
  c.has_more = values.size() > kMaxCompletionValues;
  if (c.has_more) values.resize(kMaxCompletionValues);
  c.values = std::move(values);
  return c;
}

}  // namespace ordinaut::detail
