// The in-memory event bus (make_memory_event_bus).
//
// How an event travels, in the common case of one publisher and one subscriber:
//  1. publish() takes a free EventBox from the bus's BoxPool, copies the payload
//     into it, stamps id, topic, source and time;
//  2. it stores the box's address in each matching queue's ring and moves the
//     ring's tail, under a spin lock that only publishers take;
//  3. the subscription's worker claims a run of slots with one compare-and-swap
//     of the ring's head, calls the handler for each event, drops its holds,
//     and gives the boxes whose last reference went back to the pool as one
//     chain.
// Publisher and worker share no lock per event. What limits the rate on two
// cores is the number of cache lines each event makes travel between them, so
// the layout of EventBox and Queue keeps what each side writes apart, and each
// side prefetches the lines it will need next.
#include <algorithm>
#include <atomic>
#include <bit>
#include <charconv>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "events/event_payload.hpp"
#include "ordinaut/events.hpp"
#include "core/strings.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {
namespace {

constexpr std::size_t kCacheLine = 64;

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

void prefetch_for_write(const void* line) noexcept { __builtin_prefetch(line, 1, 3); }

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
  detail::PayloadStorage payload_storage;
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
void release(EventBox* box, int count = 1) noexcept {
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
    static thread_local Gather* current_;
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

thread_local BoxPool::Gather* BoxPool::Gather::current_ = nullptr;

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

// Most events a worker claims at once (members of a group take turns).
constexpr std::size_t kClaim = 64;
// How many events ahead a worker prefetches the box.
constexpr std::size_t kPrefetchAhead = 4;

struct Member {
  std::uint64_t id = 0;
  std::string subscriber;
  std::string consumer;
  EventHandler handler;
  std::shared_ptr<Queue> queue;
  std::atomic<bool> stop{false};  // written under queue->mutex
  std::thread worker;
};

// "<milliseconds>-", the start of the ids a thread stamps in one millisecond:
// rendered once per millisecond rather than once per event.
struct IdPrefix {
  std::int64_t ms = -1;
  char text[24];
  std::size_t length = 0;
  void render(std::int64_t now_ms) {
    char* end = std::to_chars(text, text + sizeof text - 1, now_ms).ptr;
    *end++ = '-';
    length = static_cast<std::size_t>(end - text);
    ms = now_ms;
  }
};
thread_local IdPrefix tls_id_prefix;
constexpr std::size_t kIdChars = 48;  // "<ms>-<sequence>": at most 20 + 1 + 20 characters

thread_local const void* tls_worker_bus = nullptr;  // the bus whose worker runs here

class MemoryEventBus final : public EventBus {
 public:
  explicit MemoryEventBus(MemoryBusOptions options) : options_(options) {
    options_.queue_capacity = std::max<std::size_t>(options_.queue_capacity, 1);
    options_.max_attempts = std::max(options_.max_attempts, 1);
    // Negative durations mean zero; a worker looks at least every 10 ms.
    options_.poll_interval = std::clamp(options_.poll_interval, std::chrono::nanoseconds(0),
                                        std::chrono::nanoseconds(std::chrono::milliseconds(10)));
    options_.spin_before_sleep = std::max(options_.spin_before_sleep, std::chrono::nanoseconds(0));
  }
  ~MemoryEventBus() override {
    shutdown();
    boxes_->close();
  }

  Result<std::string> publish(std::string_view topic, std::string_view source, const JsonValue& payload) override {
    if (auto v = validate_topic(topic); !v) return v.error();
    if (stopped_.load(std::memory_order_acquire)) return make_error("bus_stopped", "the event bus is shut down");
    const std::size_t payload_bytes = detail::PayloadStorage::copy_size(payload);
    // A kept box has only its inline buffer: larger payloads get a box sized for them.
    EventBox* box = detail::PayloadStorage::fits_inline(payload_bytes) ? boxes_->take() : nullptr;
    if (box != nullptr) {
      box->payload_storage.reset();
    } else {
      box = new EventBox(payload_bytes, boxes_);
    }
    std::string event_id;
    thread_local std::vector<Queue*> matched;
    std::shared_lock lock(mutex_, std::defer_lock);
    try {
      box->payload_storage.copy_from(payload);
      box->reusable = box->payload_storage.reusable();
      Event& event = box->event;
      event.topic = topic;
      event.source = source;
      event.id.reserve(kIdChars);
      event_id.reserve(kIdChars);
      lock.lock();
      matched.clear();
      for (const auto& queue : queues_) {
        if (!queue->closed && topic_matches(queue->pattern, topic)) matched.push_back(queue.get());
      }
      // Nothing below throws: the sequence counts only events that are published.
      event.time_ms = detail::now_ms();
      IdPrefix& prefix = tls_id_prefix;
      if (prefix.ms != event.time_ms) prefix.render(event.time_ms);
      char id[kIdChars];
      std::memcpy(id, prefix.text, prefix.length);
      char* end =
          std::to_chars(id + prefix.length, id + sizeof id, sequence_.fetch_add(1, std::memory_order_relaxed)).ptr;
      event.id.assign(id, end);
      event_id.assign(id, end);
      // From here the box owns itself (the control block lives in the box).
      event.payload = std::shared_ptr<const Json>(
          &box->payload_storage.doc(), [](const Json*) {}, InBoxAllocator<Json>(box));
    } catch (...) {
      box->reusable = box->payload_storage.reusable();
      boxes_->give_back(box);  // nothing refers to it
      throw;
    }
    // One hold per queue, all counted before the first push: once pushed, the
    // box is the workers' (this thread must not touch it again).
    box->holds.store(std::max<int>(static_cast<int>(matched.size()), 1), std::memory_order_relaxed);
    if (matched.empty()) {
      release(box);
      return event_id;
    }
    std::size_t pushed = 0;
    try {
      for (; pushed < matched.size(); ++pushed) {
        Queue* queue = matched[pushed];
        if (EventBox* dropped = queue->push(box)) {
          queue->counters.dropped.fetch_add(1, std::memory_order_relaxed);
          release(dropped);
        }
      }
    } catch (...) {  // a ring could not grow (std::bad_alloc): the queues before it have the event
      for (std::size_t i = 0; i < pushed; ++i) matched[i]->wake();
      release(box, static_cast<int>(matched.size() - pushed));
      throw;
    }
    for (Queue* queue : matched) queue->wake();
    return event_id;
  }

  Result<std::uint64_t> subscribe(std::string_view subscriber, std::string_view pattern, EventHandler handler,
                                  const SubscribeOptions& options) override {
    if (auto v = validate_pattern(pattern); !v) return v.error();
    if (!handler) return make_error("invalid_handler", "event handler is empty");
    auto member = std::make_shared<Member>();
    std::unique_lock lock(mutex_);
    if (stopped_.load()) return make_error("bus_stopped", "the event bus is shut down");
    member->id = next_id_++;
    member->subscriber = subscriber;
    member->consumer = options.consumer.empty() ? fmt::format("{}-{}", subscriber, member->id) : options.consumer;
    member->handler = std::move(handler);
    std::shared_ptr<Queue> queue;
    std::string group_key;
    if (!options.group.empty()) {
      group_key = fmt::format("{}|{}|{}", subscriber, options.group, pattern);
      if (auto it = groups_.find(group_key); it != groups_.end()) queue = it->second;
    }
    if (!queue) {
      queue = std::make_shared<Queue>(std::string(pattern), options.group, options_.queue_capacity);
      queues_.push_back(queue);
      if (!group_key.empty()) groups_.emplace(group_key, queue);
    }
    {
      std::lock_guard ql(queue->mutex);
      ++queue->members;
    }
    member->queue = queue;
    // The worker holds its Member (and through it the queue): a handler that
    // cancels its own subscription, or shuts the bus down, returns into run().
    member->worker = std::thread([this, m = member] { run(*m); });
    members_.emplace(member->id, member);
    return member->id;
  }

  void unsubscribe(std::uint64_t id) override {
    std::shared_ptr<Member> member;
    bool last = false;
    {
      std::unique_lock lock(mutex_);
      auto it = members_.find(id);
      if (it == members_.end()) return;
      member = it->second;
      members_.erase(it);
      std::lock_guard ql(member->queue->mutex);
      last = --member->queue->members == 0;
      if (last) {
        member->queue->closed = true;  // publishers skip it from now on
        std::erase_if(groups_, [&](const auto& g) { return g.second == member->queue; });
      }
    }
    stop_member(member);
    if (last) retire(member->queue);
  }

  void unsubscribe_all(std::string_view subscriber) override {
    std::vector<std::uint64_t> ids;
    {
      std::shared_lock lock(mutex_);
      for (auto& [id, m] : members_) {
        if (m->subscriber == subscriber) ids.push_back(id);
      }
    }
    for (auto id : ids) unsubscribe(id);
  }

  Json health() const override {
    Json doc = json::object();
    auto& a = doc.GetAllocator();
    std::uint64_t delivered = retired_.delivered.load(), failed = retired_.failed.load(),
                  dropped = retired_.dropped.load(), retried = retired_.retried.load(), queued = 0;
    std::size_t subscriptions;
    {
      std::shared_lock lock(mutex_);
      for (const auto* list : {&queues_, &retiring_}) {
        for (const auto& q : *list) {
          delivered += q->counters.delivered.load();
          failed += q->counters.failed.load();
          dropped += q->counters.dropped.load();
          retried += q->counters.retried.load();
          queued += q->size();
        }
      }
      subscriptions = members_.size();
    }
    doc.AddMember("kind", "memory", a);
    doc.AddMember("connected", !stopped_.load(), a);
    doc.AddMember("published", sequence_.load(), a);
    doc.AddMember("delivered", delivered, a);
    doc.AddMember("failed", failed, a);
    doc.AddMember("retried", retried, a);
    doc.AddMember("dropped", dropped, a);
    doc.AddMember("queued", queued, a);
    doc.AddMember("subscriptions", static_cast<std::uint64_t>(subscriptions), a);
    doc.AddMember("queue_capacity", static_cast<std::uint64_t>(options_.queue_capacity), a);
    return doc;
  }

  Json subscriber_health(std::string_view subscriber) const override {
    Json doc;
    doc.SetArray();
    auto& a = doc.GetAllocator();
    std::shared_lock lock(mutex_);
    for (const auto& [id, m] : members_) {
      if (m->subscriber != subscriber) continue;
      Queue& q = *m->queue;
      const std::uint64_t queued = q.size();
      std::string last_error;
      {
        std::lock_guard ql(q.mutex);
        last_error = q.last_error;
      }
      JsonValue s(rapidjson::kObjectType);
      s.AddMember("id", id, a);
      s.AddMember("pattern", JsonValue(q.pattern.c_str(), a), a);
      s.AddMember("group", JsonValue(q.group.c_str(), a), a);
      s.AddMember("consumer", JsonValue(m->consumer.c_str(), a), a);
      // Not yet handled; for a group these are the group's (shared) figures.
      s.AddMember("pending", queued, a);
      s.AddMember("lag", queued, a);
      s.AddMember("delivered", q.counters.delivered.load(), a);
      s.AddMember("failed", q.counters.failed.load(), a);
      s.AddMember("retried", q.counters.retried.load(), a);
      s.AddMember("dropped", q.counters.dropped.load(), a);
      s.AddMember("last_error", last_error.empty() ? JsonValue() : JsonValue(last_error.c_str(), a), a);
      doc.PushBack(s, a);
    }
    return doc;
  }

  void shutdown() override {
    if (stopped_.exchange(true)) return;
    // Let the workers deliver what is queued, unless a handler called us: its
    // own queue cannot drain while it waits here.
    if (tls_worker_bus != this) {
      const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
      std::vector<std::shared_ptr<Queue>> queues;
      {
        std::shared_lock lock(mutex_);
        queues = queues_;
      }
      for (auto& q : queues) q->drain(deadline);
    }
    std::map<std::uint64_t, std::shared_ptr<Member>> members;
    {
      std::unique_lock lock(mutex_);
      members.swap(members_);
      groups_.clear();
      for (auto& q : queues_) {
        q->closed = true;
        std::lock_guard ql(q->mutex);
        q->members = 0;
      }
    }
    for (auto& [id, m] : members) stop_member(m);
    std::vector<std::shared_ptr<Queue>> queues;
    {
      std::shared_lock lock(mutex_);
      queues = queues_;
    }
    for (auto& q : queues) retire(q);
    std::vector<std::pair<std::thread, std::shared_ptr<Member>>> orphans;
    {
      std::lock_guard lock(orphans_mutex_);
      orphans.swap(orphans_);
    }
    for (auto& [thread, member] : orphans) {
      if (thread.get_id() == std::this_thread::get_id()) {
        thread.detach();  // shutdown() called by the handler that cancelled itself
      } else {
        thread.join();
      }
    }
    orphans.clear();
    std::unique_lock lock(mutex_);
    fold_retired();
  }

 private:
  void stop_member(const std::shared_ptr<Member>& m) {
    {
      std::lock_guard ql(m->queue->mutex);
      m->stop.store(true);
    }
    m->queue->ready.notify_all();
    m->queue->stopping.notify_all();
    if (!m->worker.joinable()) return;
    if (m->worker.get_id() == std::this_thread::get_id()) {
      // A handler cancelled its own subscription: it finishes the current
      // event and then exits; shutdown() joins it.
      std::lock_guard lock(orphans_mutex_);
      orphans_.emplace_back(std::move(m->worker), m);
    } else {
      m->worker.join();
    }
  }

  // Forgets a queue with no members and counts what it still held as
  // dropped. Its counters join the bus totals once no worker uses the queue
  // any more: a worker whose handler cancelled its own subscription may still
  // be finishing a batch.
  void retire(const std::shared_ptr<Queue>& q) {
    std::unique_lock lock(mutex_);
    auto it = std::find(queues_.begin(), queues_.end(), q);
    if (it == queues_.end()) return;
    queues_.erase(it);
    q->counters.dropped.fetch_add(q->discard());
    retiring_.push_back(q);
    fold_retired();
  }

  // Under the unique lock: moves the counters of retired queues nobody else
  // holds into retired_.
  void fold_retired() {
    std::erase_if(retiring_, [&](const std::shared_ptr<Queue>& q) {
      if (q.use_count() != 1) return false;
      std::atomic_thread_fence(std::memory_order_acquire);  // after the last holder's release
      retired_.delivered += q->counters.delivered.load();
      retired_.failed += q->counters.failed.load();
      retired_.dropped += q->counters.dropped.load();
      retired_.retried += q->counters.retried.load();
      return true;
    });
  }

  void run(Member& m) {
    tls_worker_bus = this;
    Queue& q = *m.queue;
    BoxPool& boxes = *boxes_;
    std::vector<EventBox*> batch;
    batch.reserve(kClaim);
    while (true) {
      q.begin_batch();
      if (m.stop.load() || q.claim(batch, kClaim) == 0) {
        q.end_batch();
        if (m.stop.load()) return;
        if (!await_events(q, m)) q.sleep(m.stop);
        continue;
      }
      const std::size_t n = batch.size();
      std::size_t done = 0, delivered = 0;
      for (std::size_t i = 0; i < std::min(n, kPrefetchAhead); ++i) prefetch_for_write(batch[i]->hot_line());
      for (; done < n && !m.stop.load(std::memory_order_relaxed); ++done) {
        if (done + kPrefetchAhead < n) {
          prefetch_for_write(batch[done + kPrefetchAhead]->hot_line());
        }
        delivered += deliver(m, batch[done]->event) ? 1 : 0;
      }
      {
        BoxPool::Gather gather(boxes);  // what the releases free goes back as one chain
        for (EventBox* box : batch) release(box);
      }
      q.counters.delivered.fetch_add(delivered, std::memory_order_relaxed);
      if (done < n) q.counters.dropped.fetch_add(n - done, std::memory_order_relaxed);
      q.end_batch();
    }
  }

  // Waits, without sleeping, up to spin_before_sleep for the queue to hold
  // events; false if none came. It looks at the queue every poll_interval
  // only: the tail it reads is a cache line the publisher writes per event,
  // and each look makes the publisher's next write fetch the line back.
  bool await_events(Queue& q, const Member& m) const {
    using std::chrono::steady_clock;
    const auto until = steady_clock::now() + options_.spin_before_sleep;
    while (true) {
      const auto now = steady_clock::now();
      if (now >= until) return false;
      const auto next = std::min(now + options_.poll_interval, until);
      do {
        if (m.stop.load(std::memory_order_relaxed)) return true;
        cpu_relax();
      } while (steady_clock::now() < next);
      if (q.size() > 0) return true;
    }
  }

  // Returns whether the handler succeeded (the caller counts deliveries per batch).
  bool deliver(Member& m, const Event& event) {
    Queue& q = *m.queue;
    auto delay = options_.retry_delay;
    for (int attempt = 1;; ++attempt) {
      std::string error;
      try {
        m.handler(event);
        return true;
      } catch (const std::exception& e) {
        error = e.what();
      } catch (...) {
        error = "handler threw a non-standard exception";
      }
      std::unique_lock ql(q.mutex);
      q.last_error = fmt::format("event {} on {}: {}", event.id, event.topic, error);
      if (m.stop.load() || attempt >= options_.max_attempts) {  // stop first: the bus may be gone then
        q.counters.failed.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      q.counters.retried.fetch_add(1, std::memory_order_relaxed);
      q.stopping.wait_for(ql, delay, [&] { return m.stop.load(); });
      delay *= 2;
    }
  }

  // Read by workers and publishers; written at construction (stopped_: once).
  MemoryBusOptions options_;
  std::shared_ptr<BoxPool> boxes_ = std::make_shared<BoxPool>();
  std::atomic<bool> stopped_{false};
  // Written by every publish: a cache line of its own, which workers never
  // read (a worker reading options_ on the same line would take the line
  // from the publisher at each event).
  alignas(kCacheLine) mutable std::shared_mutex mutex_;
  std::atomic<std::uint64_t> sequence_{0};      // events published so far
  std::vector<std::shared_ptr<Queue>> queues_;  // every queue with members (and closing ones)
  std::vector<std::shared_ptr<Queue>> retiring_;  // retired, but a worker may still count into them
  // The rest changes with subscriptions only.
  alignas(kCacheLine)
      std::map<std::string, std::shared_ptr<Queue>> groups_;  // open group queues by subscriber|group|pattern
  std::map<std::uint64_t, std::shared_ptr<Member>> members_;
  std::uint64_t next_id_ = 1;
  Counters retired_;  // totals of queues that are gone
  std::mutex orphans_mutex_;
  std::vector<std::pair<std::thread, std::shared_ptr<Member>>> orphans_;
};

}  // namespace

std::shared_ptr<EventBus> make_memory_event_bus(MemoryBusOptions options) {
  return std::make_shared<MemoryEventBus>(options);
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
