#include "session.hpp"

#include <algorithm>
#include <random>
#include <vector>

#include "protocol.hpp"

namespace ordinaut::mcp_http {

namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Stamps of last use, for least-recently-used eviction.
std::uint64_t next_use() {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

// 128 random bits as hex: std::random_device reads the kernel's CSPRNG on
// Linux, so ids cannot be guessed from earlier ones.
std::string new_session_id() {
  static thread_local std::random_device device;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(32);
  for (int i = 0; i < 4; ++i) {
    std::uint32_t word = device();
    for (int j = 0; j < 8; ++j) {
      id += kHex[word & 15];
      word >>= 4;
    }
  }
  return id;
}

}  // namespace

Session::Session(std::string id, std::string version, ClientCapabilities caps, std::string client_name,
                 std::string client_address, EventLimits event_limits)
    : id_(std::move(id)),
      version_(std::move(version)),
      caps_(caps),
      client_name_(std::move(client_name)),
      client_address_(std::move(client_address)),
      last_active_ms_(steady_ms()),
      last_use_(next_use()),
      events_(std::make_shared<EventStore>(event_limits)) {}

bool Session::resumable() const {
  return events_->limits().enabled() && version_ >= std::string_view("2025-11-25");
}

void Session::add_exchange(const std::shared_ptr<Exchange>& exchange) {
  std::lock_guard lock(mutex_);
  // Finished exchanges are dropped here: the map holds about as many entries
  // as the session has POSTs in flight.
  std::erase_if(exchanges_, [](const auto& kv) { return kv.second.expired(); });
  exchanges_[exchange->stream_id()] = exchange;
}

std::shared_ptr<Exchange> Session::find_exchange(std::uint64_t stream) const {
  std::lock_guard lock(mutex_);
  auto it = exchanges_.find(stream);
  return it == exchanges_.end() ? nullptr : it->second.lock();
}

void Session::touch() {
  last_active_ms_.store(steady_ms(), std::memory_order_relaxed);
  last_use_.store(next_use(), std::memory_order_relaxed);
}

std::chrono::milliseconds Session::idle_for() const {
  return std::chrono::milliseconds(steady_ms() - last_active_ms_.load(std::memory_order_relaxed));
}

bool Session::busy() const {
  std::lock_guard lock(mutex_);
  return stream_open_ || !calls_.empty();
}

bool Session::add_call(const std::shared_ptr<CallState>& call) {
  std::lock_guard lock(mutex_);
  return calls_.emplace(call->id, call).second;
}

void Session::remove_call(const std::string& id) {
  std::lock_guard lock(mutex_);
  calls_.erase(id);
}

std::shared_ptr<CallState> Session::find_call(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = calls_.find(id);
  return it == calls_.end() ? nullptr : it->second;
}

std::pair<std::string, std::shared_ptr<PendingAsk>> Session::add_ask() {
  auto ask = std::make_shared<PendingAsk>();
  std::lock_guard lock(mutex_);
  std::string id = std::to_string(++next_ask_);
  asks_.emplace(id, ask);
  return {id, ask};
}

void Session::remove_ask(const std::string& id) {
  std::lock_guard lock(mutex_);
  asks_.erase(id);
}

bool Session::resolve_ask(const std::string& id, bool ok, std::string result_json, int error_code,
                          std::string error_text) {
  std::shared_ptr<PendingAsk> ask;
  {
    std::lock_guard lock(mutex_);
    auto it = asks_.find(id);
    if (it == asks_.end()) return false;
    ask = it->second;
    asks_.erase(it);
  }
  {
    std::lock_guard lock(ask->mutex);
    if (ask->done) return false;
    ask->done = true;
    ask->ok = ok;
    ask->result_json = std::move(result_json);
    ask->error_code = error_code;
    ask->error_text = std::move(error_text);
  }
  ask->answered.notify_all();
  return true;
}

std::uint64_t Session::claim_stream() {
  std::lock_guard lock(mutex_);
  if (stream_open_ || closed_.load()) return 0;
  stream_open_ = true;
  tools_changed_ = false;  // a new stream starts from the current list
  notifications_.clear();
  return ++stream_token_;
}

void Session::release_stream(std::uint64_t token) {
  {
    std::lock_guard lock(mutex_);
    if (token != stream_token_ || !stream_open_) return;
    stream_open_ = false;
  }
  touch();
}

void Session::run_stream(StreamSink& sink, std::chrono::milliseconds keepalive, std::vector<StoredEvent> replay) {
  static const std::string kChanged = notification_message("notifications/tools/list_changed");
  for (const auto& event : replay) {
    if (!sink.write(sse_stored(event))) return;
  }
  auto last_write = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  while (!closed_.load()) {
    stream_wakeup_.wait_for(lock, std::min(keepalive, kPollSlice),
                            [&] { return tools_changed_ || !notifications_.empty() || closed_.load(); });
    if (closed_.load()) break;
    const bool changed = tools_changed_;
    tools_changed_ = false;
    std::deque<std::string> queued;
    queued.swap(notifications_);
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    bool ok = sink.is_open();
    if (ok && changed) {
      ok = sink.write(sse_event(events_->append(kStandaloneStream, kChanged), kChanged));
      last_write = now;
    }
    for (const auto& message : queued) {
      if (!ok) break;
      ok = sink.write(sse_event(events_->append(kStandaloneStream, message), message));
      last_write = now;
    }
    if (ok && now - last_write >= keepalive) {
      // Also how a vanished client is noticed by sinks that only learn it from a failed write.
      ok = sink.write(": keepalive\n\n");
      last_write = now;
    }
    lock.lock();
    if (!ok) break;
  }
}

void Session::notify_tools_changed() {
  {
    std::lock_guard lock(mutex_);
    if (!stream_open_) return;  // nowhere to deliver it, as in the SDK
    tools_changed_ = true;
  }
  stream_wakeup_.notify_all();
}

void Session::notify(std::string message) {
  {
    std::lock_guard lock(mutex_);
    if (!stream_open_) return;
    if (std::find(notifications_.begin(), notifications_.end(), message) != notifications_.end()) return;
    if (notifications_.size() >= kMaxQueuedNotifications) notifications_.pop_front();
    notifications_.push_back(std::move(message));
  }
  stream_wakeup_.notify_all();
}

void Session::on_close(std::function<void()> hook) {
  {
    std::lock_guard lock(mutex_);
    if (!closed_.load()) {
      close_hooks_.push_back(std::move(hook));
      return;
    }
  }
  hook();
}

void Session::close() {
  std::vector<std::shared_ptr<CallState>> calls;
  std::vector<std::shared_ptr<PendingAsk>> asks;
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard lock(mutex_);
    if (closed_.exchange(true)) return;
    for (auto& [id, call] : calls_) calls.push_back(call);
    for (auto& [id, ask] : asks_) asks.push_back(ask);
    asks_.clear();
    hooks.swap(close_hooks_);
    notifications_.clear();
  }
  stream_wakeup_.notify_all();
  for (auto& hook : hooks) hook();
  for (auto& call : calls) call->cancelled.store(true);
  for (auto& ask : asks) {
    {
      std::lock_guard lock(ask->mutex);
      if (ask->done) continue;
      ask->done = true;
      ask->ok = false;
      ask->error_code = kConnectionError;
      ask->error_text = "the session ended";
    }
    ask->answered.notify_all();
  }
}

void SessionStore::forget_locked(Map::iterator it) {
  const std::string& address = it->second->client_address();
  if (!address.empty()) {
    auto count = per_client_.find(address);
    if (count != per_client_.end() && --count->second == 0) per_client_.erase(count);
  }
  sessions_.erase(it);
}

std::shared_ptr<Session> SessionStore::evict_locked(const std::string* address) {
  // A linear scan: eviction happens only when full, and touch() stays a
  // lock-free store instead of maintaining an ordered list on every request.
  auto oldest = sessions_.end();
  std::uint64_t oldest_use = 0;
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    Session& s = *it->second;
    if (address != nullptr && s.client_address() != *address) continue;
    if (s.busy()) continue;
    if (oldest == sessions_.end() || s.last_use() < oldest_use) {
      oldest_use = s.last_use();
      oldest = it;
    }
  }
  if (oldest == sessions_.end()) return nullptr;
  auto session = oldest->second;
  forget_locked(oldest);
  evicted_.fetch_add(1, std::memory_order_relaxed);
  return session;
}

std::shared_ptr<Session> SessionStore::create(std::string version, ClientCapabilities caps, std::string client_name,
                                              std::string client_address) {
  if (size() >= max_sessions_ || steady_ms() - last_sweep_ms_.load(std::memory_order_relaxed) > 60000) sweep();
  std::vector<std::shared_ptr<Session>> evicted;  // closed outside the lock
  std::shared_ptr<Session> session;
  {
    std::unique_lock lock(mutex_);
    if (!client_address.empty()) {
      auto count = per_client_.find(client_address);
      if (count != per_client_.end() && count->second >= max_per_client_) {
        auto own = evict_locked(&client_address);
        if (!own) return nullptr;
        evicted.push_back(std::move(own));
      }
    }
    if (sessions_.size() >= max_sessions_) {
      auto any = evict_locked(nullptr);
      if (!any) return nullptr;
      evicted.push_back(std::move(any));
    }
    while (true) {
      session = std::make_shared<Session>(new_session_id(), version, caps, client_name, client_address, event_limits_);
      if (sessions_.emplace(session->id(), session).second) break;
    }
    if (!client_address.empty()) ++per_client_[client_address];
  }
  for (auto& s : evicted) s->close();
  return session;
}

std::shared_ptr<Session> SessionStore::find(std::string_view id) const {
  std::shared_lock lock(mutex_);
  auto it = sessions_.find(std::string(id));
  return it == sessions_.end() ? nullptr : it->second;
}

bool SessionStore::remove(std::string_view id) {
  std::shared_ptr<Session> session;
  {
    std::unique_lock lock(mutex_);
    auto it = sessions_.find(std::string(id));
    if (it == sessions_.end()) return false;
    session = it->second;
    forget_locked(it);
  }
  session->close();
  return true;
}

void SessionStore::for_each(const std::function<void(Session&)>& fn) const {
  std::vector<std::shared_ptr<Session>> copy;
  {
    std::shared_lock lock(mutex_);
    copy.reserve(sessions_.size());
    for (const auto& [id, s] : sessions_) copy.push_back(s);
  }
  for (auto& s : copy) fn(*s);
}

void SessionStore::close_all() {
  Map all;
  {
    std::unique_lock lock(mutex_);
    all.swap(sessions_);
    per_client_.clear();
  }
  for (auto& [id, s] : all) s->close();
}

std::size_t SessionStore::size() const {
  std::shared_lock lock(mutex_);
  return sessions_.size();
}

std::size_t SessionStore::size_of(const std::string& client_address) const {
  std::shared_lock lock(mutex_);
  if (client_address.empty()) {
    return static_cast<std::size_t>(std::count_if(sessions_.begin(), sessions_.end(),
                                                  [](const auto& kv) { return kv.second->client_address().empty(); }));
  }
  auto it = per_client_.find(client_address);
  return it == per_client_.end() ? 0 : it->second;
}

std::size_t SessionStore::sweep() {
  std::vector<std::shared_ptr<Session>> expired;
  {
    std::unique_lock lock(mutex_);
    last_sweep_ms_.store(steady_ms(), std::memory_order_relaxed);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      auto next = std::next(it);
      if (!it->second->busy() && it->second->idle_for() > idle_limit_) {
        expired.push_back(it->second);
        forget_locked(it);
      }
      it = next;
    }
  }
  for (auto& s : expired) s->close();
  return expired.size();
}

}  // namespace ordinaut::mcp_http
