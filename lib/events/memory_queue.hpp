// The bounded queue of the in-memory bus (internal): a ring of event boxes
// between publishers and the worker(s) of one subscription or group.
//
// Owns: which events a subscription (or group) still has to handle, the
// overflow policy (drop the oldest), the ring's growth and shrinking, waking
// and putting workers to sleep, and the per-queue counters.
// Calls: EventBox / release() (memory_boxes.hpp); no handler, no other queue.
//
// Locking: publishers serialise on push_lock_ (a SpinLock, one at a time per
// queue); workers claim with a CAS on head_ and share no lock with
// publishers per event; `mutex` guards the members' sleep and stop flags and
// ring replacement. See the class comment for the invariants.
// Only memory_bus.cpp includes this header.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "events/memory_boxes.hpp"

namespace ordinaut::detail::memory {

struct Counters {
  std::atomic<std::uint64_t> delivered{0}, failed{0}, dropped{0}, retried{0};
};

// Slots of a queue's ring, addressed by position (counted from 0 for the life
// of the queue) modulo the size.
class Ring {
 public:
  explicit Ring(std::size_t size) : mask_(size - 1), slots_(std::make_unique<std::atomic<EventBox*>[]>(size)) {}
  std::size_t size() const noexcept { return mask_ + 1; }
  std::atomic<EventBox*>& at(std::uint64_t position) noexcept { return slots_[position & mask_]; }

 private:
  std::size_t mask_;
  std::unique_ptr<std::atomic<EventBox*>[]> slots_;
};

// One bounded queue: a plain subscription owns one, a group shares one among
// its members, each of which runs a worker thread on it.
//
// The events are a ring of box addresses between two positions: `head_` (the
// oldest not yet claimed) and `tail_` (the next free). Publishers, one at a
// time under push_lock_, store a slot and then move the tail; workers claim
// [head, head + n) by moving the head with a compare-and-swap, after reading
// those slots, so a claim whose CAS succeeds read slots nobody has overwritten
// (a publisher overwrites a slot only once the head has passed it). A full
// queue drops its oldest event by the same CAS. The ring starts small and
// doubles, up to the capacity, when it fills; it halves again when it is
// mostly empty (see tidy()). A ring that was replaced is freed once no worker
// can still be reading it.
class Queue {
 public:
  Queue(std::string pattern_, std::string group_, std::size_t capacity_)
      : pattern(std::move(pattern_)),
        group(std::move(group_)),
        capacity(capacity_),
        max_ring_(std::bit_ceil(std::min<std::size_t>(capacity_, kMaxRing))),
        min_ring_(std::min(max_ring_, kFirstRing)) {
    rings_.push_back(std::make_unique<Ring>(min_ring_));
    ring_.store(rings_.back().get(), std::memory_order_relaxed);
  }
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  ~Queue() { discard(); }

  // Publisher side. Adds `box` (whose hold the caller counted) and returns the
  // event dropped to make room, if any, whose hold the caller must release.
  EventBox* push(EventBox* box) {
    EventBox* dropped = nullptr;
    std::lock_guard lock(push_lock_);
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    Ring* ring = ring_.load(std::memory_order_relaxed);
    if (tail - head_seen_ >= limit(*ring)) {
      head_seen_ = head_.load(std::memory_order_acquire);
      while (tail - head_seen_ >= limit(*ring)) {
        if (ring->size() < max_ring_) {
          ring = replace_ring(ring->size() * 2, tail);
          continue;
        }
        std::uint64_t head = head_seen_;
        EventBox* oldest = ring->at(head).load(std::memory_order_acquire);
        if (head_.compare_exchange_strong(head, head + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
          dropped = oldest;
          ++head;
        }
        head_seen_ = head;  // on failure: where workers moved it
      }
    }
    ring->at(tail).store(box, std::memory_order_release);
    // seq_cst, and a read-modify-write: ordered before wake()'s read of
    // sleepers_, against sleep()'s increment of sleepers_ before it reads the
    // tail, so that one of the two sees the other.
    tail_.exchange(tail + 1, std::memory_order_seq_cst);
    if ((tail + 1) % kTidyEvery == 0) tidy(tail + 1);
    return dropped;
  }

  // Publisher side, after push(): wakes a sleeping worker.
  void wake() {
    if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
    { std::lock_guard lock(mutex); }  // the sleeper is inside wait() once we get it
    ready.notify_one();
  }

  // Worker side. Claims up to `most` events into `out`; returns how many.
  std::size_t claim(std::vector<EventBox*>& out, std::size_t most) {
    out.clear();
    std::uint64_t head = head_.load(std::memory_order_acquire);
    while (true) {
      const std::uint64_t tail = tail_.load(std::memory_order_acquire);
      if (head >= tail) return 0;
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(tail - head, most));
      // Holds [head, tail): loaded after the tail. seq_cst: see free_outgrown().
      Ring* ring = ring_.load(std::memory_order_seq_cst);
      out.resize(n);
      for (std::size_t i = 0; i < n; ++i) out[i] = ring->at(head + i).load(std::memory_order_acquire);
      if (head_.compare_exchange_weak(head, head + n, std::memory_order_acq_rel, std::memory_order_acquire)) {
        return n;
      }
    }
  }

  // Claims and releases every queued event; returns how many there were.
  // Only once no publisher can push and no worker will claim again.
  std::size_t discard() {
    std::size_t discarded = 0;
    std::vector<EventBox*> rest;
    while (claim(rest, 256) > 0) {
      discarded += rest.size();
      for (EventBox* box : rest) release(box);
    }
    return discarded;
  }

  // Events queued and not yet claimed.
  std::size_t size() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_acquire);  // first: the head never passes the tail
    return static_cast<std::size_t>(tail_.load(std::memory_order_acquire) - head);
  }

  // Worker side: blocks until events are queued or `stop` is set.
  void sleep(const std::atomic<bool>& stop) {
    if (push_lock_.try_lock()) {  // the queue ran dry: a good time to give memory back
      tidy(tail_.load(std::memory_order_relaxed));
      push_lock_.unlock();
    }
    std::unique_lock lock(mutex);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    while (!stop.load() && empty_seq_cst()) ready.wait(lock);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Worker side: a batch is claimed (before the claim) or done (after it).
  void begin_batch() noexcept { busy_.fetch_add(1, std::memory_order_seq_cst); }
  void end_batch() {
    busy_.fetch_sub(1, std::memory_order_seq_cst);
    if (draining_.load(std::memory_order_seq_cst)) {
      std::lock_guard lock(mutex);
      idle.notify_all();
    }
  }

  // shutdown(): waits until the queue is empty and no worker holds a batch,
  // until `deadline`, or until the queue has no members left.
  void drain(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex);
    draining_.store(true, std::memory_order_seq_cst);
    idle.wait_until(lock, deadline,
                    [&] { return (empty_seq_cst() && busy_.load(std::memory_order_seq_cst) == 0) || members == 0; });
  }

  const std::string pattern;
  const std::string group;
  const std::size_t capacity;
  bool closed = false;  // guarded by the bus's mutex_: publishers skip it
  std::mutex mutex;
  std::condition_variable ready;     // events arrived, or a member must stop
  std::condition_variable idle;      // a batch is done while shutdown() drains
  std::condition_variable stopping;  // a member must stop (ends a retry pause)
  // Guarded by mutex:
  int members = 0;
  std::string last_error;

 private:
  static constexpr std::size_t kFirstRing = 1024;
  static constexpr std::uint64_t kTidyEvery = 4096;
  static constexpr std::size_t kMaxRing = std::size_t{1} << 40;

  std::size_t limit(const Ring& ring) const noexcept { return std::min(ring.size(), capacity); }

  bool empty_seq_cst() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_seq_cst);
    return tail_.load(std::memory_order_seq_cst) == head;
  }

  // Under push_lock_: replaces the ring by one of `size` slots (which must
  // hold [head, tail)). Workers may go on reading the old one until they see
  // the new one; it is freed once none can (free_outgrown()).
  Ring* replace_ring(std::size_t size, std::uint64_t tail) {
    Ring* old = ring_.load(std::memory_order_relaxed);
    auto replacement = std::make_unique<Ring>(size);
    for (std::uint64_t p = head_.load(std::memory_order_acquire); p < tail; ++p) {
      replacement->at(p).store(old->at(p).load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
    rings_.push_back(std::move(replacement));
    Ring* ring = rings_.back().get();
    ring_.store(ring, std::memory_order_seq_cst);
    free_outgrown();
    return ring;
  }

  // Under push_lock_: frees the rings before the current one if no worker is
  // inside a claim. A worker that begins one later loads ring_ after its
  // begin_batch() (both seq_cst), so it sees the current ring.
  void free_outgrown() {
    if (rings_.size() > 1 && busy_.load(std::memory_order_seq_cst) == 0) {
      rings_.erase(rings_.begin(), rings_.end() - 1);
    }
  }

  // Under push_lock_, every kTidyEvery events and when a worker finds the
  // queue empty: halves a ring at most an eighth full (down to the first
  // size), and frees outgrown rings.
  void tidy(std::uint64_t tail) {
    Ring* ring = ring_.load(std::memory_order_relaxed);
    std::size_t size = ring->size();
    const std::uint64_t used = tail - head_.load(std::memory_order_acquire);
    while (size > min_ring_ && used <= size / 8) size /= 2;
    if (size != ring->size()) {
      replace_ring(size, tail);
    } else {
      free_outgrown();
    }
  }

  const std::size_t max_ring_;
  const std::size_t min_ring_;
  // Written by publishers, under push_lock_.
  alignas(kCacheLine) SpinLock push_lock_;
  std::uint64_t head_seen_ = 0;  // the head as last read: the ring is full only if it was
  std::vector<std::unique_ptr<Ring>> rings_;
  std::atomic<Ring*> ring_{nullptr};
  std::atomic<std::uint64_t> tail_{0};
  // Written by workers.
  alignas(kCacheLine) std::atomic<std::uint64_t> head_{0};
  std::atomic<int> busy_{0};  // workers between begin_batch() and end_batch()
  // Written rarely, read by publishers per event.
  alignas(kCacheLine) std::atomic<int> sleepers_{0};  // workers in sleep()
  std::atomic<bool> draining_{false};

 public:
  alignas(kCacheLine) Counters counters;
};

}  // namespace ordinaut::detail::memory
