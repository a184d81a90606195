// Storage of the in-memory bus's events (internal): EventBox, the recycled
// object that holds one published event, and BoxPool, the free boxes of a bus.
//
// Owns: the memory of queued events and their payloads, its reuse, and the
// cache-line layout that keeps a publisher's and a worker's writes apart.
// Calls: PayloadStorage (event_payload.hpp) only.
//
// Locking: a box is written by its publisher before any queue holds it and
// read-only afterwards, except `holds`, the control block and next_free
// (atomics, or touched only by the thread that dropped the last hold).
// BoxPool::take() is for publishers (take_lock_, a SpinLock held for a list
// pop only); give_back() is lock-free (a CAS on returned_). Only memory_bus.cpp
// includes this header.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>

#include "events/event_payload.hpp"
#include "ordinaut/events.hpp"

namespace ordinaut::detail::memory {

constexpr std::size_t kCacheLine = 64;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

inline void prefetch_for_write(const void* line) noexcept { __builtin_prefetch(line, 1, 3); }

// A lock for the few instructions publishers serialize on: taking it is one
// atomic exchange and releasing it a plain store (a std::mutex costs two
// locked instructions). A waiter that spins long yields its core, so a holder
// that was preempted gets to run.
class SpinLock {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (int i = 0; locked_.load(std::memory_order_relaxed); ++i) {
        if (i < 64) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

class BoxPool;

// Bytes before the Event in an EventBox that put Event::payload at the start of
// a cache line (see EventBox).
static_assert(std::is_standard_layout_v<Event>);
constexpr std::size_t kLead = (kCacheLine - offsetof(Event, payload) % kCacheLine) % kCacheLine;
static_assert(kLead > sizeof(void*) && kLead % alignof(Event) == 0);

// Everything one published event needs, in one object that is recycled: the
// event, its payload, the pool the payload lives in, and the control block of
// the payload's shared_ptr. That shared_ptr (event.payload) is the box's only
// owner, so a handler may keep a copy of the Event (or of its payload) for as
// long as it likes; the self-reference is kept while queues hold the box
// (`holds`: one per queue it was pushed to), the last hold to go drops it,
// and when no copy is left the control block's deallocation hands the box
// back to its BoxPool. A reused box keeps its strings' capacity and its
// payload's inline buffer: publishing allocates nothing in a steady state, and
// a worker thread frees nothing a publisher allocated.
//
// Layout: what a worker writes per event (holds, the control block, the free
// list link, and event.payload, which the last hold moves out) shares one
// cache line, the "hot line"; the strings and the payload, which only the
// publisher writes, are on other lines. So a handler that reads nothing of
// the event moves one line back and forth per event.
struct alignas(kCacheLine) EventBox {
  EventBox(std::size_t chunk, std::shared_ptr<BoxPool> owner)
      : pool(owner.get()), payload_storage(chunk), pool_owner(std::move(owner)) {}

  BoxPool* pool;  // where the box goes back to; set once
  std::byte lead_padding[kLead - sizeof(BoxPool*)];
  Event event;  // event.payload starts the hot line
  // The rest of the hot line.
  alignas(std::max_align_t) std::byte control_block[32];  // of event.payload, see InBoxAllocator
  std::atomic<int> holds{1};
  bool reusable = false;          // the payload fits the inline buffer; set by the publisher
  EventBox* next_free = nullptr;  // in BoxPool's lists
  // Cold lines.
  PayloadStorage payload_storage;
  std::shared_ptr<BoxPool> pool_owner;  // keeps the pool alive while the box exists

  const void* hot_line() const noexcept { return &event.payload; }
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"  // EventBox is not standard-layout; GCC and Clang still support it
static_assert((offsetof(EventBox, event) + offsetof(Event, payload)) % kCacheLine == 0,
              "event.payload starts a cache line");
static_assert(offsetof(EventBox, next_free) + sizeof(EventBox*) <=
                  offsetof(EventBox, event) + offsetof(Event, payload) + kCacheLine,
              "the hot line holds event.payload, the control block, holds, reusable and next_free");
#pragma GCC diagnostic pop

// Drops `count` holds on a box; the last one drops the box's self-reference.
inline void release(EventBox* box, int count = 1) noexcept {
  if (box->holds.fetch_sub(count, std::memory_order_acq_rel) == count) {
    auto last = std::move(box->event.payload);  // may hand the box back on leaving this scope
  }
}

// Free boxes of one bus, about kKeep at most; shared with the boxes, so it
// outlives the bus while handlers still hold events. Boxes come back on any
// thread onto a lock-free stack (a worker gives back what a batch freed as one
// chain); publishers take the whole stack at once when their own list runs
// dry, so neither side takes a lock per event that the other takes.
class BoxPool {
 public:
  static constexpr std::size_t kKeep = 1024;

  // While one exists on a thread, boxes of its pool that come back on that
  // thread are gathered, and given back as one chain when it ends.
  class Gather {
   public:
    explicit Gather(BoxPool& pool) noexcept : pool_(&pool), outer_(std::exchange(current_, this)) {}
    Gather(const Gather&) = delete;
    Gather& operator=(const Gather&) = delete;
    ~Gather() {
      current_ = outer_;
      if (first_ != nullptr) pool_->push_chain(first_, last_, count_);  // pool_ may be gone after this
    }

   private:
    friend class BoxPool;
    bool add(const BoxPool* pool, EventBox* box) noexcept {
      if (pool != pool_) return false;
      box->next_free = first_;
      first_ = box;
      if (last_ == nullptr) last_ = box;
      ++count_;
      return true;
    }
    BoxPool* pool_;
    Gather* outer_;
    EventBox* first_ = nullptr;
    EventBox* last_ = nullptr;
    std::size_t count_ = 0;
    static inline thread_local Gather* current_ = nullptr;
  };

  ~BoxPool() {
    EventBox* rest = returned_.exchange(nullptr);
    if (rest != closed_mark()) delete_chain(rest);
  }

  // A free box, or nullptr when none is left.
  EventBox* take() {
    std::lock_guard lock(take_lock_);
    if (taken_ == nullptr) {
      EventBox* chain = returned_.exchange(nullptr, std::memory_order_acquire);
      if (chain == closed_mark()) {  // cannot happen: nothing publishes on a closed bus
        returned_.store(chain);
        return nullptr;
      }
      taken_ = chain;
      returned_count_.store(0, std::memory_order_relaxed);
      if (taken_ == nullptr) return nullptr;
    }
    EventBox* box = taken_;
    taken_ = box->next_free;
    if (taken_ != nullptr) {
      // The next publish writes these lines, which a worker touched last: ask
      // for them now, while this event is built.
      prefetch_for_write(taken_->hot_line());
      prefetch_for_write(&taken_->event.id);
      prefetch_for_write(&taken_->event.source);
    }
    box->next_free = nullptr;
    return box;
  }

  // Takes back a box nothing refers to any more, or frees it.
  void give_back(EventBox* box) {
    if (!box->reusable) {
      delete box;  // last: it may drop the last reference to this pool
      return;
    }
    if (Gather* gather = Gather::current_; gather != nullptr && gather->add(this, box)) return;
    box->next_free = nullptr;
    push_chain(box, box, 1);
  }

  // Frees the kept boxes; boxes still in use are freed when they come back.
  void close() {
    EventBox* taken = nullptr;
    {
      std::lock_guard lock(take_lock_);
      taken = std::exchange(taken_, nullptr);
    }
    EventBox* returned = returned_.exchange(closed_mark(), std::memory_order_acquire);
    delete_chain(taken);
    delete_chain(returned);
  }

 private:
  // Stack head once closed: boxes coming back are freed instead of kept.
  static EventBox* closed_mark() noexcept { return reinterpret_cast<EventBox*>(alignof(EventBox)); }

  // A box may hold the last reference to its pool: the caller must not touch
  // the pool afterwards (every caller returns right away).
  static void delete_chain(EventBox* box) {
    while (box != nullptr) delete std::exchange(box, box->next_free);
  }

  // Pushes first..last (linked by next_free, last's link null). Once the CAS
  // has pushed them, only those boxes keep this pool alive, and close() may
  // free both at any moment: nothing here touches `this` after it.
  void push_chain(EventBox* first, EventBox* last, std::size_t count) {
    if (returned_count_.fetch_add(count, std::memory_order_relaxed) + count > kKeep) {
      delete_chain(first);
      return;
    }
    EventBox* head = returned_.load(std::memory_order_relaxed);
    do {
      if (head == closed_mark()) {  // the bus is gone
        last->next_free = nullptr;
        delete_chain(first);
        return;
      }
      last->next_free = head;
    } while (!returned_.compare_exchange_weak(head, first, std::memory_order_release, std::memory_order_relaxed));
  }

  SpinLock take_lock_;
  EventBox* taken_ = nullptr;  // guarded by take_lock_
  alignas(kCacheLine) std::atomic<EventBox*> returned_{nullptr};
  std::atomic<std::size_t> returned_count_{0};
};


// Allocator of event.payload's control block: the box's own storage, and on
// deallocation (the very last use of the box: after the payload's owner and
// every weak reference are gone) the box goes back to its pool.
template <typename T>
struct InBoxAllocator {
  using value_type = T;
  EventBox* box;
  explicit InBoxAllocator(EventBox* b) noexcept : box(b) {}
  template <typename U>
  InBoxAllocator(const InBoxAllocator<U>& other) noexcept : box(other.box) {}
  T* allocate(std::size_t n) {
    if (n * sizeof(T) <= sizeof box->control_block && alignof(T) <= alignof(std::max_align_t)) {
      return reinterpret_cast<T*>(box->control_block);
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t) noexcept {
    EventBox* b = box;
    if (static_cast<void*>(p) != static_cast<void*>(b->control_block)) ::operator delete(p);
    b->pool->give_back(b);
  }
  template <typename U>
  bool operator==(const InBoxAllocator<U>& other) const noexcept {
    return box == other.box;
  }
};

}  // namespace ordinaut::detail::memory
