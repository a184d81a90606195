// Event values, topic patterns, the capability handles, and the in-memory bus.
#include "ordinaut/events.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <utility>
#include <vector>

#include <rapidjson/error/en.h>
#include <fmt/format.h>

#include "event_payload.hpp"
#include "strings.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

std::string Event::to_json() const {
  return fmt::format(R"({{"id":"{}","topic":"{}","source":"{}","time":"{}","payload":{}}})", json::escape(id),
                     json::escape(topic), json::escape(source), detail::rfc3339(time_ms),
                     payload ? json::dump(*payload) : "null");
}

bool topic_matches(std::string_view pattern, std::string_view topic) noexcept {
  if (pattern == "*") return true;
  if (pattern.size() >= 2 && pattern.ends_with(".*")) {
    std::string_view prefix = pattern.substr(0, pattern.size() - 1);  // keeps the '.'
    return topic.size() > prefix.size() && topic.starts_with(prefix);
  }
  return pattern == topic;
}

namespace {

// The characters a topic may use: A-Z a-z 0-9 _ . : - (a table, not
// std::isalnum, whose answer depends on the C locale the embedder set).
constexpr auto kTopicChars = [] {
  std::array<bool, 256> allowed{};
  for (char c = 'a'; c <= 'z'; ++c) allowed[static_cast<unsigned char>(c)] = true;
  for (char c = 'A'; c <= 'Z'; ++c) allowed[static_cast<unsigned char>(c)] = true;
  for (char c = '0'; c <= '9'; ++c) allowed[static_cast<unsigned char>(c)] = true;
  for (char c : {'_', '.', ':', '-'}) allowed[static_cast<unsigned char>(c)] = true;
  return allowed;
}();

}  // namespace

Result<void> validate_topic(std::string_view topic) {
  if (topic.empty() || topic.size() > 200) {
    return make_error("invalid_topic", fmt::format("topic \"{}\" must have 1 to 200 characters", topic));
  }
  for (char c : topic) {
    if (!kTopicChars[static_cast<unsigned char>(c)]) {
      return make_error("invalid_topic",
                        fmt::format("topic \"{}\" may only use A-Z a-z 0-9 _ . : - (found '{}')", topic, c));
    }
  }
  return {};
}

Result<void> validate_pattern(std::string_view pattern) {
  if (pattern == "*") return {};
  if (pattern.ends_with(".*")) {
    auto prefix = validate_topic(pattern.substr(0, pattern.size() - 2));
    if (!prefix) return make_error("invalid_pattern", fmt::format("pattern \"{}\": {}", pattern, prefix.error().message));
    return {};
  }
  if (auto t = validate_topic(pattern); !t) {
    return make_error("invalid_pattern",
                      fmt::format("pattern \"{}\" must be a topic, \"prefix.*\" or \"*\"", pattern));
  }
  return {};
}

Result<std::vector<std::string>> EventBus::publish_batch(std::string_view source,
                                                         const std::vector<EventDraft>& events) {
  for (const auto& e : events) {
    if (auto v = validate_topic(e.topic); !v) return v.error();
  }
  std::vector<std::string> ids;
  ids.reserve(events.size());
  for (const auto& e : events) {
    auto id = publish(e.topic, source, e.payload);
    if (!id) return id.error();
    ids.push_back(std::move(*id));
  }
  return ids;
}

void Subscription::cancel() {
  if (auto bus = bus_.lock(); bus && id_ != 0) bus->unsubscribe(id_);
  id_ = 0;
}

Result<std::string> EventPublisher::publish(std::string_view topic, const JsonValue& payload) const {
  return bus_->publish(topic, source_, payload);
}

Result<std::vector<std::string>> EventPublisher::publish_batch(const std::vector<EventDraft>& events) const {
  return bus_->publish_batch(source_, events);
}

Result<Subscription> EventSubscriber::subscribe(std::string_view pattern, EventHandler handler,
                                                const SubscribeOptions& options) const {
  auto id = bus_->subscribe(subscriber_, pattern, std::move(handler), options);
  if (!id) return id.error();
  return Subscription(bus_, *id);
}

}  // namespace ORDINAUT_ABI_NAMESPACE

// ---- Shared payloads -----------------------------------------------------------

namespace detail {
namespace {

rapidjson::CrtAllocator& crt_allocator() {
  static rapidjson::CrtAllocator allocator;  // stateless; safe to share
  return allocator;
}

// Upper bound of the pool bytes a copy of `v` takes (rapidjson keeps strings of
// up to 13 bytes inside the value itself).
std::size_t pool_bytes(const JsonValue& v) {
  constexpr std::size_t kAlign = 8;
  auto string_bytes = [](rapidjson::SizeType length) -> std::size_t {
    return length <= 13 ? 0 : (length + 1 + kAlign);
  };
  switch (v.GetType()) {
    case rapidjson::kObjectType: {
      std::size_t n = v.MemberCount() * sizeof(JsonValue::Member) + kAlign;
      for (const auto& m : v.GetObject()) n += string_bytes(m.name.GetStringLength()) + pool_bytes(m.value);
      return n;
    }
    case rapidjson::kArrayType: {
      std::size_t n = v.Size() * sizeof(JsonValue) + kAlign;
      for (const auto& e : v.GetArray()) n += pool_bytes(e);
      return n;
    }
    case rapidjson::kStringType:
      return string_bytes(v.GetStringLength());
    default:
      return 0;
  }
}

// SAX filter that makes the document copy every string and key.
template <typename Handler>
struct CopyStrings {
  Handler& out;
  bool Null() { return out.Null(); }
  bool Bool(bool b) { return out.Bool(b); }
  bool Int(int i) { return out.Int(i); }
  bool Uint(unsigned u) { return out.Uint(u); }
  bool Int64(std::int64_t i) { return out.Int64(i); }
  bool Uint64(std::uint64_t u) { return out.Uint64(u); }
  bool Double(double d) { return out.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) { return out.RawNumber(s, n, true); }
  bool String(const char* s, rapidjson::SizeType n, bool) { return out.String(s, n, true); }
  bool StartObject() { return out.StartObject(); }
  bool Key(const char* s, rapidjson::SizeType n, bool) { return out.Key(s, n, true); }
  bool EndObject(rapidjson::SizeType n) { return out.EndObject(n); }
  bool StartArray() { return out.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return out.EndArray(n); }
};

// The stack rapidjson builds a document on: a buffer inside the allocator
// (which lives on the caller's stack for one copy) instead of a malloc and
// free per copy; larger stacks move to the heap. rapidjson's StackAllocator
// concept makes Free static, so each block starts with a header that says
// where it lives.
class ScratchAllocator {
 public:
  static constexpr bool kNeedFree = true;
  void* Malloc(std::size_t size) {
    if (size == 0) return nullptr;
    if (!in_use_ && size <= sizeof buffer_ - kHeader) {
      in_use_ = true;
      return tag(buffer_, kInline);
    }
    void* block = std::malloc(size + kHeader);
    return block == nullptr ? nullptr : tag(block, kHeap);
  }
  void* Realloc(void* old, std::size_t old_size, std::size_t new_size) {
    if (old == nullptr) return Malloc(new_size);  // rapidjson's stack starts this way
    if (!is_inline(old)) {
      void* block = std::realloc(static_cast<char*>(old) - kHeader, new_size + kHeader);
      return block == nullptr ? nullptr : tag(block, kHeap);
    }
    if (new_size <= sizeof buffer_ - kHeader) return old;
    void* grown = Malloc(new_size);  // from the heap: the buffer is in use
    if (grown != nullptr) std::memcpy(grown, old, old_size);
    return grown;
  }
  static void Free(void* p) {
    if (p != nullptr && !is_inline(p)) std::free(static_cast<char*>(p) - kHeader);
  }

 private:
  static constexpr std::size_t kHeader = 16;  // keeps blocks 16-byte aligned
  static constexpr unsigned char kInline = 1, kHeap = 2;
  static void* tag(void* block, unsigned char where) {
    static_cast<unsigned char*>(block)[0] = where;
    return static_cast<char*>(block) + kHeader;
  }
  static bool is_inline(const void* p) { return static_cast<const unsigned char*>(p)[-static_cast<std::ptrdiff_t>(kHeader)] == kInline; }

  alignas(16) char buffer_[4096];
  bool in_use_ = false;
};

using ScratchDocument = rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>, ScratchAllocator>;

struct CopyGenerator {
  const JsonValue& source;
  template <typename Handler>
  bool operator()(Handler& handler) const {
    CopyStrings<Handler> filter{handler};
    return source.Accept(filter);
  }
};

}  // namespace

PayloadStorage::PayloadStorage(std::size_t chunk)
    : pool_(inline_buffer_, sizeof inline_buffer_, std::max<std::size_t>(chunk, 64), &crt_allocator()),
      doc_(&pool_, 256, &crt_allocator()) {}

void PayloadStorage::reset() {
  doc_.SetNull();  // first: nothing may point into the chunks Clear() frees
  pool_.Clear();
}

std::size_t PayloadStorage::copy_size(const JsonValue& value) { return pool_bytes(value); }

void PayloadStorage::copy_from(const JsonValue& value) {
  // Built on a scratch stack, in this storage's pool; then the root moves in.
  ScratchAllocator scratch;
  ScratchDocument builder(&pool_, 1024, &scratch);
  CopyGenerator generator{value};
  builder.Populate(generator);
  static_cast<JsonValue&>(doc_) = std::move(static_cast<JsonValue&>(builder));
}

Result<void> PayloadStorage::parse(std::string_view text) {
  doc_.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
  if (doc_.HasParseError()) {
    return make_error("invalid_json", fmt::format("payload is not JSON (offset {}): {}", doc_.GetErrorOffset(),
                                                  rapidjson::GetParseError_En(doc_.GetParseError())));
  }
  return {};
}

std::shared_ptr<const Json> share_payload(const JsonValue& value) {
  auto box = std::make_shared<PayloadStorage>(PayloadStorage::copy_size(value));
  box->copy_from(value);
  return std::shared_ptr<const Json>(box, &box->doc());
}

Result<std::shared_ptr<const Json>> parse_payload(std::string_view text) {
  // Parsed values take at most ~8 pool bytes per input byte (e.g. "[1,1,...]");
  // typical payloads take less, and the pool grows by further chunks if needed.
  auto box = std::make_shared<PayloadStorage>(text.size() * 2);
  if (auto parsed = box->parse(text); !parsed) return parsed.error();
  return std::shared_ptr<const Json>(box, &box->doc());
}

}  // namespace detail

inline namespace ORDINAUT_ABI_NAMESPACE {

// ---- In-memory bus -----------------------------------------------------------

namespace {

class BoxPool;

// Everything one published event needs, in one object that is recycled: the
// event, its payload, the pool the payload lives in, and the control block of
// the payload's shared_ptr. That shared_ptr (event.payload) is the box's only
// owner, so a handler may keep a copy of the Event (or of its payload) for as
// long as it likes; the self-reference keeps the box alive while queues hold
// it (`holds`, one per queue plus the publisher's), the last EventRef to let
// go drops it, and when no copy is left the control block's deallocation
// hands the box back to its BoxPool. A reused box keeps its strings' capacity
// and its payload's inline buffer: publishing allocates nothing in a steady
// state, and a worker thread frees nothing a publisher allocated (glibc's
// allocator contends on exactly that pattern).
struct EventBox {
  EventBox(std::size_t chunk, std::shared_ptr<BoxPool> owner) : payload(chunk), pool(std::move(owner)) {}
  Event event;
  std::atomic<int> holds{1};
  detail::PayloadStorage payload;
  std::shared_ptr<BoxPool> pool;  // where the box goes back to
  EventBox* next_free = nullptr;  // in BoxPool's lists
  alignas(std::max_align_t) std::byte control_block[64];  // of event.payload, see InBoxAllocator
};

// Free boxes of one bus, about kKeep at most; shared with the boxes, so it
// outlives the bus while handlers still hold events. Boxes come back on any
// thread (a worker, or whoever drops the last copy of an event) onto a
// lock-free stack; publishers take the whole stack at once when their own
// list runs dry, so neither side takes a lock per event that the other takes.
class BoxPool {
 public:
  static constexpr std::size_t kKeep = 1024;
  ~BoxPool() {
    EventBox* rest = returned_.exchange(nullptr);
    if (rest != closed_mark()) delete_chain(rest);
  }

  EventBox* take() {
    std::lock_guard lock(take_mutex_);
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
    box->next_free = nullptr;
    return box;
  }

  // Once the CAS has pushed the box, only that box keeps this pool alive, and
  // close() may free both at any moment: nothing here touches `this` after it.
  void give_back(EventBox* box) {
    if (!box->payload.reusable() || returned_count_.fetch_add(1, std::memory_order_relaxed) >= kKeep) {
      delete box;  // last: it may drop the last reference to this pool
      return;
    }
    EventBox* head = returned_.load(std::memory_order_relaxed);
    do {
      if (head == closed_mark()) {
        delete box;  // the bus is gone
        return;
      }
      box->next_free = head;
    } while (!returned_.compare_exchange_weak(head, box, std::memory_order_release, std::memory_order_relaxed));
  }

  // Frees the kept boxes; boxes still in use are freed when they come back.
  void close() {
    EventBox* taken = nullptr;
    {
      std::lock_guard lock(take_mutex_);
      taken = std::exchange(taken_, nullptr);
    }
    EventBox* returned = returned_.exchange(closed_mark(), std::memory_order_acquire);
    delete_chain(taken);
    delete_chain(returned);
  }

 private:
  // Stack head once closed: give_back() then frees instead of pushing.
  static EventBox* closed_mark() noexcept { return reinterpret_cast<EventBox*>(alignof(EventBox)); }
  static void delete_chain(EventBox* box);

  std::mutex take_mutex_;
  EventBox* taken_ = nullptr;  // guarded by take_mutex_
  std::atomic<EventBox*> returned_{nullptr};
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

void BoxPool::delete_chain(EventBox* box) {
  // A box may hold the last reference to its pool: the caller must not touch
  // the pool afterwards (every caller returns right away).
  while (box != nullptr) delete std::exchange(box, box->next_free);
}

// One hold on an EventBox (move-only).
class EventRef {
 public:
  EventRef() = default;
  explicit EventRef(EventBox* box) : box_(box) {}  // adopts a hold already counted
  EventRef(EventRef&& other) noexcept : box_(std::exchange(other.box_, nullptr)) {}
  EventRef& operator=(EventRef&& other) noexcept {
    if (this != &other) {
      reset();
      box_ = std::exchange(other.box_, nullptr);
    }
    return *this;
  }
  EventRef(const EventRef&) = delete;
  EventRef& operator=(const EventRef&) = delete;
  ~EventRef() { reset(); }

  const Event& operator*() const { return box_->event; }
  void reset() {
    EventBox* box = std::exchange(box_, nullptr);
    if (box != nullptr && box->holds.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      auto last = std::move(box->event.payload);  // may free the box on leaving this scope
    }
  }

 private:
  EventBox* box_ = nullptr;
};

struct Counters {
  std::atomic<std::uint64_t> delivered{0}, failed{0}, dropped{0}, retried{0};
};

// One bounded queue: a plain subscription owns one, a group shares one among
// its members. Each member runs one worker thread on it.
struct Queue {
  std::string pattern;
  std::string group;
  std::size_t capacity = 0;
  std::mutex mutex;
  std::condition_variable ready;  // items arrived, or a member must stop
  std::condition_variable idle;   // queue empty and no member holds a batch
  std::condition_variable stopping;  // a member must stop (ends a retry pause)
  // Guarded by mutex:
  std::deque<EventRef> items;
  int members = 0;
  int sleeping = 0;  // members waiting on `ready`; publishers notify only then
  int busy = 0;      // members delivering a batch taken from `items`
  bool closed = false;
  std::string last_error;
  // Written by publishers per event: on its own cache line, away from the
  // counters the worker updates.
  alignas(64) std::atomic<std::size_t> size_hint{0};  // items.size() as last stored; read while spinning
  alignas(64) Counters counters;
};

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Locks a queue's mutex, spinning briefly first: its critical sections are a
// few dozen nanoseconds, and a publisher and a worker meet on it per event;
// sleeping in the kernel on every such meeting costs far more.
void lock_spinning(std::unique_lock<std::mutex>& lock) {
  for (int i = 0; i < 128; ++i) {
    if (lock.try_lock()) return;
    cpu_relax();
  }
  lock.lock();
}

// How long an idle worker spins before it sleeps. A publisher in a burst
// refills the queue within a microsecond, and a futex wake-up per event costs
// more than the event itself.
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(10);
// How long a worker that saw an event arrive waits for more (at most
// kGatherBatch) before it takes them: adds at most that much latency to a
// lone event, and saves a lock round trip per event in a burst.
constexpr auto kGather = std::chrono::microseconds(2);
constexpr std::size_t kGatherBatch = 32;

struct Member {
  std::uint64_t id = 0;
  std::string subscriber;
  std::string consumer;
  EventHandler handler;
  std::shared_ptr<Queue> queue;
  std::atomic<bool> stop{false};  // written under queue->mutex
  std::thread worker;
};

thread_local const void* tls_worker_bus = nullptr;  // the bus whose worker runs here

class MemoryEventBus final : public EventBus {
 public:
  explicit MemoryEventBus(MemoryBusOptions options) : options_(options) {
    options_.queue_capacity = std::max<std::size_t>(options_.queue_capacity, 1);
    options_.max_attempts = std::max(options_.max_attempts, 1);
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
      box->payload.reset();
      box->holds.store(1, std::memory_order_relaxed);
    } else {
      box = new EventBox(payload_bytes, boxes_);
    }
    try {
      box->payload.copy_from(payload);
    } catch (...) {
      boxes_->give_back(box);
      throw;
    }
    Event& event = box->event;
    // The box's only owner; the control block lives in the box.
    event.payload = std::shared_ptr<const Json>(&box->payload.doc(), [](const Json*) {}, InBoxAllocator<Json>(box));
    EventRef publisher_hold(box);
    event.time_ms = detail::now_ms();
    char id[48];
    auto end = std::to_chars(id, id + 24, event.time_ms).ptr;
    *end++ = '-';
    end = std::to_chars(end, id + sizeof id, sequence_.fetch_add(1, std::memory_order_relaxed)).ptr;
    event.id.assign(id, end);
    event.topic = topic;
    event.source = source;
    std::string event_id = event.id;  // the box may be gone once the queues are done with it
    published_.fetch_add(1, std::memory_order_relaxed);
    std::shared_lock lock(mutex_);
    for (const auto& queue : queues_) {
      if (!topic_matches(queue->pattern, topic)) continue;
      std::unique_lock ql(queue->mutex, std::defer_lock);
      lock_spinning(ql);
      if (queue->closed) continue;
      if (queue->items.size() >= queue->capacity) {
        queue->items.pop_front();
        queue->counters.dropped.fetch_add(1, std::memory_order_relaxed);
      }
      box->holds.fetch_add(1, std::memory_order_relaxed);
      queue->items.emplace_back(box);
      queue->size_hint.store(queue->items.size(), std::memory_order_relaxed);
      const bool wake = queue->sleeping > 0;
      ql.unlock();
      if (wake) queue->ready.notify_one();
    }
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
      queue = std::make_shared<Queue>();
      queue->pattern = pattern;
      queue->group = options.group;
      queue->capacity = options_.queue_capacity;
      queues_.push_back(queue);
      if (!group_key.empty()) groups_.emplace(group_key, queue);
    }
    {
      std::lock_guard ql(queue->mutex);
      ++queue->members;
    }
    member->queue = queue;
    member->worker = std::thread([this, m = member.get()] { run(*m); });
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
      for (const auto& q : queues_) {
        delivered += q->counters.delivered.load();
        failed += q->counters.failed.load();
        dropped += q->counters.dropped.load();
        retried += q->counters.retried.load();
        std::lock_guard ql(q->mutex);
        queued += q->items.size();
      }
      subscriptions = members_.size();
    }
    doc.AddMember("kind", "memory", a);
    doc.AddMember("connected", !stopped_.load(), a);
    doc.AddMember("published", published_.load(), a);
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
      const Queue& q = *m->queue;
      std::uint64_t queued;
      std::string last_error;
      {
        std::lock_guard ql(m->queue->mutex);
        queued = q.items.size();
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
      for (auto& q : queues) {
        std::unique_lock ql(q->mutex);
        q->idle.wait_until(ql, deadline, [&] { return (q->items.empty() && q->busy == 0) || q->members == 0; });
      }
    }
    std::map<std::uint64_t, std::shared_ptr<Member>> members;
    {
      std::unique_lock lock(mutex_);
      members.swap(members_);
      groups_.clear();
      for (auto& q : queues_) {
        std::lock_guard ql(q->mutex);
        q->closed = true;
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

  // Moves the counters of a queue with no members into the bus totals, counts
  // what it still held as dropped, and forgets it.
  void retire(const std::shared_ptr<Queue>& q) {
    std::unique_lock lock(mutex_);
    auto it = std::find(queues_.begin(), queues_.end(), q);
    if (it == queues_.end()) return;
    queues_.erase(it);
    std::lock_guard ql(q->mutex);
    q->counters.dropped.fetch_add(q->items.size());
    q->items.clear();
    retired_.delivered += q->counters.delivered.load();
    retired_.failed += q->counters.failed.load();
    retired_.dropped += q->counters.dropped.load();
    retired_.retried += q->counters.retried.load();
  }

  void run(Member& m) {
    tls_worker_bus = this;
    Queue& q = *m.queue;
    std::deque<EventRef> batch;
    bool holding = false;  // a batch was taken (and counted in q.busy) last round
    while (true) {
      std::unique_lock ql(q.mutex, std::defer_lock);
      lock_spinning(ql);
      if (holding) {
        holding = false;
        if (--q.busy == 0 && q.items.empty()) q.idle.notify_all();
      }
      if (q.items.empty() && !m.stop.load()) {
        ql.unlock();
        await_items(q, m);
        lock_spinning(ql);
      }
      while (!m.stop.load() && q.items.empty()) {
        if (q.busy == 0) q.idle.notify_all();
        ++q.sleeping;
        q.ready.wait(ql);
        --q.sleeping;
      }
      if (m.stop.load()) return;
      if (q.members <= 1) {
        batch.swap(q.items);
      } else {
        // Members of a group take turns: a slice each, so that they share the work.
        const std::size_t take = std::min<std::size_t>(q.items.size(), 64);
        std::move(q.items.begin(), q.items.begin() + static_cast<std::ptrdiff_t>(take), std::back_inserter(batch));
        q.items.erase(q.items.begin(), q.items.begin() + static_cast<std::ptrdiff_t>(take));
      }
      q.size_hint.store(q.items.size(), std::memory_order_relaxed);
      ++q.busy;
      holding = true;
      ql.unlock();
      std::size_t done = 0, delivered = 0;
      for (; done < batch.size() && !m.stop.load(std::memory_order_relaxed); ++done) {
        delivered += deliver(m, *batch[done]) ? 1 : 0;
      }
      q.counters.delivered.fetch_add(delivered, std::memory_order_relaxed);
      if (done < batch.size()) q.counters.dropped.fetch_add(batch.size() - done, std::memory_order_relaxed);
      batch.clear();
    }
  }

  // Spins (without the lock) until the queue seems to hold events, for up to
  // kSpinBeforeSleep; then, once the first event is there, up to kGather more
  // for a batch to fill: taking one event per lock would make a publisher in a
  // burst and this worker meet on the queue's mutex at every event.
  static void await_items(Queue& q, const Member& m) {
    using std::chrono::steady_clock;
    const auto until = steady_clock::now() + kSpinBeforeSleep;
    for (int i = 1; q.size_hint.load(std::memory_order_relaxed) == 0; ++i) {
      if (m.stop.load(std::memory_order_relaxed)) return;
      cpu_relax();
      if (i % 64 == 0 && steady_clock::now() >= until) return;
    }
    const auto gathered = steady_clock::now() + kGather;
    const std::size_t enough = std::min(kGatherBatch, q.capacity);  // a small queue must not fill up meanwhile
    for (int i = 1; q.size_hint.load(std::memory_order_relaxed) < enough; ++i) {
      if (m.stop.load(std::memory_order_relaxed)) return;
      cpu_relax();
      if (i % 16 == 0 && steady_clock::now() >= gathered) return;
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
      if (attempt >= options_.max_attempts || m.stop.load()) {
        q.counters.failed.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      q.counters.retried.fetch_add(1, std::memory_order_relaxed);
      q.stopping.wait_for(ql, delay, [&] { return m.stop.load(); });
      delay *= 2;
    }
  }

  MemoryBusOptions options_;
  mutable std::shared_mutex mutex_;
  std::vector<std::shared_ptr<Queue>> queues_;                    // every queue with members (and closing ones)
  std::map<std::string, std::shared_ptr<Queue>> groups_;          // open group queues by subscriber|group|pattern
  std::map<std::uint64_t, std::shared_ptr<Member>> members_;
  std::uint64_t next_id_ = 1;
  Counters retired_;  // totals of queues that are gone
  std::mutex orphans_mutex_;
  std::vector<std::pair<std::thread, std::shared_ptr<Member>>> orphans_;
  std::shared_ptr<BoxPool> boxes_ = std::make_shared<BoxPool>();
  std::atomic<std::uint64_t> sequence_{0};
  std::atomic<std::uint64_t> published_{0};
  std::atomic<bool> stopped_{false};
};

}  // namespace

std::shared_ptr<EventBus> make_memory_event_bus(MemoryBusOptions options) {
  return std::make_shared<MemoryEventBus>(options);
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
