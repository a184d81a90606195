#include "ordinaut/resources.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <set>

#include <fmt/format.h>

#include "core/strings.hpp"
#include "tools/registry_support.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

ResourceContents ResourceContents::make_text(std::string uri, std::string text, std::string mime_type) {
  return ResourceContents{std::move(uri), std::move(mime_type), std::move(text), {}, false};
}

ResourceContents ResourceContents::make_blob(std::string uri, std::string bytes, std::string mime_type) {
  return ResourceContents{std::move(uri), std::move(mime_type), {}, std::move(bytes), true};
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const auto n = (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
                   (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 2]));
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

namespace {

// One piece of a parsed template: a literal, or a variable ("{name}" stops at
// '/', "{+name}" does not).
struct TemplatePart {
  bool variable = false;
  bool reserved = false;
  std::string text;  // the literal, or the variable's name
};

std::optional<std::vector<TemplatePart>> parse_template(std::string_view t, std::string* why = nullptr) {
  std::vector<TemplatePart> parts;
  std::set<std::string, std::less<>> names;
  std::size_t i = 0;
  while (i < t.size()) {
    if (t[i] == '}') {
      if (why) *why = fmt::format("unexpected '}}' at offset {}", i);
      return std::nullopt;
    }
    if (t[i] != '{') {
      const std::size_t next = t.find_first_of("{}", i);
      const std::size_t end = next == std::string_view::npos ? t.size() : next;
      parts.push_back({false, false, std::string(t.substr(i, end - i))});
      i = end;
      continue;
    }
    const std::size_t close = t.find('}', i);
    if (close == std::string_view::npos) {
      if (why) *why = fmt::format("'{{' at offset {} is never closed", i);
      return std::nullopt;
    }
    std::string_view name = t.substr(i + 1, close - i - 1);
    bool reserved = false;
    if (!name.empty() && name.front() == '+') {
      reserved = true;
      name.remove_prefix(1);
    }
    const bool valid_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
    if (!valid_name) {
      if (why) *why = fmt::format("variable at offset {} must be {{name}} or {{+name}} with A-Z a-z 0-9 _", i);
      return std::nullopt;
    }
    if (!names.insert(std::string(name)).second) {
      if (why) *why = fmt::format("variable {{{}}} appears twice", name);
      return std::nullopt;
    }
    if (!parts.empty() && parts.back().variable) {
      if (why) *why = fmt::format("variables {{{}}} and {{{}}} need a literal between them", parts.back().text, name);
      return std::nullopt;
    }
    parts.push_back({true, reserved, std::string(name)});
    i = close + 1;
  }
  return parts;
}

bool match_parts(const std::vector<TemplatePart>& parts, std::size_t k, std::string_view uri, StringMap& out) {
  if (k == parts.size()) return uri.empty();
  const TemplatePart& p = parts[k];
  if (!p.variable) {
    if (!uri.starts_with(p.text)) return false;
    return match_parts(parts, k + 1, uri.substr(p.text.size()), out);
  }
  // A variable: at least one character, up to the next literal (parse_template
  // guarantees one follows unless this is the last part). Try the shortest
  // first; templates are short, so the backtracking is bounded by the URI
  // length times the number of variables.
  std::size_t limit = uri.size();
  if (!p.reserved) {
    const std::size_t slash = uri.find('/');
    if (slash != std::string_view::npos) limit = slash;
  }
  if (k + 1 == parts.size()) {
    if (limit != uri.size() || uri.empty()) return false;
    out[p.text] = std::string(uri);
    return true;
  }
  const std::string& literal = parts[k + 1].text;
  for (std::size_t pos = uri.find(literal, 1); pos != std::string_view::npos && pos <= limit;
       pos = uri.find(literal, pos + 1)) {
    StringMap attempt = out;
    attempt[p.text] = std::string(uri.substr(0, pos));
    if (match_parts(parts, k + 1, uri.substr(pos), attempt)) {
      out = std::move(attempt);
      return true;
    }
  }
  return false;
}

bool valid_scheme(std::string_view s) {
  if (s.empty() || s.size() > 32 || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
}

bool reserved_scheme(std::string_view s) {
  static constexpr std::string_view kReserved[] = {"ext", "ordinaut", "http", "https", "file", "data", "javascript"};
  return std::any_of(std::begin(kReserved), std::end(kReserved),
                     [&](std::string_view r) { return detail::iequals(r, s); });
}

// "scheme" of "scheme://rest", or empty.
std::string_view scheme_of(std::string_view uri) {
  const std::size_t colon = uri.find("://");
  if (colon == std::string_view::npos || colon == 0) return {};
  return uri.substr(0, colon);
}

struct Entry {
  std::shared_ptr<const void> lease;  // keeps the owner's code alive (hold_for_owner)
  ResourceInfo info;
  std::vector<TemplatePart> parts;  // templates only
  ResourceReadFunction read;
  CompletionFunction complete;
};

}  // namespace

std::optional<StringMap> match_uri_template(std::string_view uri_template, std::string_view uri) {
  auto parts = parse_template(uri_template);
  if (!parts) return std::nullopt;
  StringMap vars;
  if (!match_parts(*parts, 0, uri, vars)) return std::nullopt;
  return vars;
}

struct ResourceRegistry::Impl : detail::ListenerSet {
  mutable std::shared_mutex mutex;
  std::map<std::string, std::shared_ptr<const Entry>, std::less<>> resources;  // by URI
  std::map<std::string, std::shared_ptr<const Entry>, std::less<>> templates;  // by template
  std::map<std::string, std::string, std::less<>> schemes;                     // scheme -> owner
  std::function<void(std::string_view)> resolver;
  std::map<std::string, std::shared_ptr<const void>, std::less<>> leases;  // by owner; under mutex

  mutable std::mutex subscribers_mutex;
  mutable std::multimap<std::string, std::pair<std::uint64_t, std::function<void(std::string_view)>>, std::less<>>
      subscribers;
  mutable std::uint64_t next_subscriber = 1;

  // REQUIRES: mutex (shared or unique).
  Result<void> check_namespace(std::string_view uri, std::string_view owner) const {
    const std::string_view scheme = scheme_of(uri);
    if (scheme.empty() || uri.size() == scheme.size() + 3) {
      return make_error("invalid_resource",
                        fmt::format("resource URI \"{}\" must look like scheme://path", json::escape(uri)));
    }
    if (owner == "core") {
      if (scheme == "ordinaut") return {};
      return make_error("resource_namespace", fmt::format("host resource {} must use ordinaut://", uri));
    }
    const std::string prefix = fmt::format("ext://{}/", owner);
    if (uri.starts_with(prefix) && uri.size() > prefix.size()) return {};
    auto it = schemes.find(scheme);
    if (it != schemes.end() && it->second == owner) return {};
    return make_error("resource_namespace",
                      fmt::format("resource {} is outside the namespace of extension '{}': use {}<path> or a scheme "
                                  "the manifest claims in contributes.uriSchemes",
                                  uri, owner, prefix));
  }

  Result<void> insert(std::map<std::string, std::shared_ptr<const Entry>, std::less<>>& into, const char* what,
                      std::shared_ptr<Entry> entry) {
    std::shared_ptr<const Entry> replaced;  // freed after the lock (see erase_entries)
    {
      std::unique_lock lock(mutex);
      if (auto ns = check_namespace(entry->info.uri, entry->info.owner); !ns) return ns;
      if (!entry->info.declared) {
        if (auto lease = leases.find(entry->info.owner); lease != leases.end()) entry->lease = lease->second;
      }
      auto it = into.find(entry->info.uri);
      if (it != into.end()) {
        const bool replaces_own_declaration =
            it->second->info.declared && !entry->info.declared && it->second->info.owner == entry->info.owner;
        if (!replaces_own_declaration) {
          return make_error("duplicate_resource", fmt::format("{} {} is already {} by '{}'", what, entry->info.uri,
                                                              it->second->info.declared ? "declared" : "registered",
                                                              it->second->info.owner));
        }
        replaced = std::exchange(it->second, std::move(entry));
      } else {
        into.emplace(entry->info.uri, std::move(entry));
      }
    }
    changed();
    return {};
  }

  std::size_t remove_if(const std::function<bool(const Entry&)>& pred) {
    std::size_t removed = detail::erase_entries(mutex, resources, pred);
    removed += detail::erase_entries(mutex, templates, pred);
    if (removed > 0) changed();
    return removed;
  }

  // The static entry for `uri`, else the first matching template (variables in
  // `vars`).
  std::shared_ptr<const Entry> find(std::string_view uri, StringMap& vars) const {
    std::shared_lock lock(mutex);
    if (auto it = resources.find(uri); it != resources.end()) return it->second;
    for (const auto& [t, entry] : templates) {
      StringMap v;
      if (match_parts(entry->parts, 0, uri, v)) {
        vars = std::move(v);
        return entry;
      }
    }
    return nullptr;
  }

  // Loads the owner of a declared entry, then looks again.
  template <typename Find>
  std::shared_ptr<const Entry> resolve(std::shared_ptr<const Entry> entry, Find&& again) const {
    if (!entry || !entry->info.declared) return entry;
    std::function<void(std::string_view)> r;
    {
      std::shared_lock lock(mutex);
      r = resolver;
    }
    if (r) r(entry->info.owner);
    return again();
  }
};

namespace {

Result<void> check_common(const std::string& uri, const std::string& name, bool has_function, bool declared,
                          const char* what) {
  if (uri.empty() || uri.size() > 2048) {
    return make_error("invalid_resource", fmt::format("{} URI must have 1-2048 characters", what));
  }
  if (detail::first_invalid_utf8(uri) != std::string::npos) {
    return make_error("invalid_resource", fmt::format("{} URI is not valid UTF-8", what));
  }
  if (name.empty()) return make_error("invalid_resource", fmt::format("{} {}: a name is required", what, uri));
  if (!declared && !has_function) {
    return make_error("invalid_resource", fmt::format("{} {}: read function is empty", what, uri));
  }
  return {};
}

}  // namespace

ResourceRegistry::ResourceRegistry() : impl_(std::make_unique<Impl>()) {}
ResourceRegistry::~ResourceRegistry() = default;

namespace {

std::shared_ptr<Entry> make_entry(ResourceSpec& spec, std::string_view owner, bool declared) {
  auto e = std::make_shared<Entry>();
  e->info = ResourceInfo{std::move(spec.uri),       std::move(spec.name),      std::move(spec.title),
                         std::move(spec.description), std::move(spec.mime_type), std::string(owner),
                         false,                     declared};
  if (!declared) e->read = std::move(spec.read);
  return e;
}

std::shared_ptr<Entry> make_template_entry(ResourceTemplateSpec& spec, std::string_view owner, bool declared,
                                           std::vector<TemplatePart> parts) {
  auto e = std::make_shared<Entry>();
  e->info = ResourceInfo{std::move(spec.uri_template), std::move(spec.name),      std::move(spec.title),
                         std::move(spec.description),  std::move(spec.mime_type), std::string(owner),
                         true,                         declared};
  e->parts = std::move(parts);
  if (!declared) {
    e->read = std::move(spec.read);
    e->complete = std::move(spec.complete);
  }
  return e;
}

}  // namespace

Result<void> ResourceRegistry::add(ResourceSpec spec, std::string_view owner) {
  if (auto r = check_common(spec.uri, spec.name, static_cast<bool>(spec.read), false, "resource"); !r) return r;
  if (spec.uri.find('{') != std::string::npos) {
    return make_error("invalid_resource",
                      fmt::format("resource {} contains '{{': register it with add_template()", spec.uri));
  }
  return impl_->insert(impl_->resources, "resource", make_entry(spec, owner, false));
}

Result<void> ResourceRegistry::declare(ResourceSpec spec, std::string_view owner) {
  if (auto r = check_common(spec.uri, spec.name, false, true, "resource"); !r) return r;
  return impl_->insert(impl_->resources, "resource", make_entry(spec, owner, true));
}

namespace {

Result<std::vector<TemplatePart>> template_parts(const ResourceTemplateSpec& spec) {
  std::string why;
  auto parts = parse_template(spec.uri_template, &why);
  if (!parts) {
    return make_error("invalid_resource", fmt::format("resource template {}: {}", spec.uri_template, why));
  }
  if (std::none_of(parts->begin(), parts->end(), [](const TemplatePart& p) { return p.variable; })) {
    return make_error("invalid_resource",
                      fmt::format("resource template {} has no {{variable}}: register it with add()", spec.uri_template));
  }
  return std::move(*parts);
}

}  // namespace

Result<void> ResourceRegistry::add_template(ResourceTemplateSpec spec, std::string_view owner) {
  if (auto r = check_common(spec.uri_template, spec.name, static_cast<bool>(spec.read), false, "resource template");
      !r) {
    return r;
  }
  auto parts = template_parts(spec);
  if (!parts) return parts.error();
  return impl_->insert(impl_->templates, "resource template",
                       make_template_entry(spec, owner, false, std::move(parts).value()));
}

Result<void> ResourceRegistry::declare_template(ResourceTemplateSpec spec, std::string_view owner) {
  if (auto r = check_common(spec.uri_template, spec.name, false, true, "resource template"); !r) return r;
  auto parts = template_parts(spec);
  if (!parts) return parts.error();
  return impl_->insert(impl_->templates, "resource template",
                       make_template_entry(spec, owner, true, std::move(parts).value()));
}

Result<void> ResourceRegistry::claim_scheme(std::string_view scheme, std::string_view owner) {
  if (!valid_scheme(scheme)) {
    return make_error("resource_namespace",
                      fmt::format("\"{}\" is not a URI scheme (a letter, then letters, digits, + - .)",
                                  json::escape(scheme)));
  }
  if (reserved_scheme(scheme)) {
    return make_error("resource_namespace", fmt::format("the URI scheme \"{}\" is reserved", scheme));
  }
  std::unique_lock lock(impl_->mutex);
  auto [it, inserted] = impl_->schemes.emplace(std::string(scheme), std::string(owner));
  if (!inserted && it->second != owner) {
    return make_error("resource_namespace",
                      fmt::format("the URI scheme \"{}\" is already claimed by '{}'", scheme, it->second));
  }
  return {};
}

std::size_t ResourceRegistry::remove_owner(std::string_view owner) {
  return impl_->remove_if([&](const Entry& e) { return e.info.owner == owner; });
}

std::size_t ResourceRegistry::remove_registered(std::string_view owner) {
  return impl_->remove_if([&](const Entry& e) { return e.info.owner == owner && !e.info.declared; });
}

std::vector<ResourceInfo> ResourceRegistry::list() const {
  std::shared_lock lock(impl_->mutex);
  std::vector<ResourceInfo> out;
  out.reserve(impl_->resources.size());
  for (const auto& [uri, e] : impl_->resources) out.push_back(e->info);
  return out;
}

std::vector<ResourceInfo> ResourceRegistry::list_templates() const {
  std::shared_lock lock(impl_->mutex);
  std::vector<ResourceInfo> out;
  out.reserve(impl_->templates.size());
  for (const auto& [uri, e] : impl_->templates) out.push_back(e->info);
  return out;
}

Result<std::vector<ResourceContents>> ResourceRegistry::read(std::string_view uri) const {
  StringMap vars;
  auto entry = impl_->find(uri, vars);
  entry = impl_->resolve(entry, [&] {
    vars.clear();
    return impl_->find(uri, vars);
  });
  if (!entry) return make_error("resource_not_found", fmt::format("no resource matches {}", json::escape(uri)));
  if (entry->info.declared) {
    return make_error("extension_unavailable",
                      fmt::format("resource {} is declared by extension '{}', which did not load or did not register "
                                  "it (see /ext/status)",
                                  json::escape(uri), entry->info.owner));
  }
  try {
    auto contents = entry->read(ResourceRequest{std::string(uri), std::move(vars)});
    for (auto& c : contents) {
      if (c.uri.empty()) c.uri = std::string(uri);
      if (c.mime_type.empty()) c.mime_type = entry->info.mime_type;
    }
    return contents;
  } catch (const ResourceError& e) {
    return make_error(e.code(), fmt::format("resource {}: {}", json::escape(uri), e.what()));
  } catch (const std::exception& e) {
    return make_error("read_failed", fmt::format("resource {}: read failed: {}", json::escape(uri), e.what()));
  } catch (...) {
    return make_error("read_failed",
                      fmt::format("resource {}: read failed with a non-standard exception", json::escape(uri)));
  }
}

Result<Completion> ResourceRegistry::complete(std::string_view uri_template, std::string_view name,
                                              std::string_view value, const StringMap& context) const {
  auto find = [&]() -> std::shared_ptr<const Entry> {
    std::shared_lock lock(impl_->mutex);
    auto it = impl_->templates.find(uri_template);
    return it == impl_->templates.end() ? nullptr : it->second;
  };
  auto entry = impl_->resolve(find(), find);
  if (!entry) {
    return make_error("resource_not_found", fmt::format("no resource template {}", json::escape(uri_template)));
  }
  if (std::none_of(entry->parts.begin(), entry->parts.end(),
                   [&](const TemplatePart& p) { return p.variable && p.text == name; })) {
    return make_error("invalid_params", fmt::format("resource template {} has no variable {{{}}}",
                                                    json::escape(uri_template), json::escape(name)));
  }
  if (entry->info.declared) {
    return make_error("extension_unavailable",
                      fmt::format("resource template {} is declared by extension '{}', which did not load",
                                  json::escape(uri_template), entry->info.owner));
  }
  if (!entry->complete) return Completion{};
  try {
    return detail::make_completion(entry->complete(name, value, context));
  } catch (const std::exception& e) {
    return make_error("completion_failed", fmt::format("completion for {}: {}", json::escape(uri_template), e.what()));
  }
}

std::uint64_t ResourceRegistry::subscribe(std::string_view uri, std::function<void(std::string_view)> listener) const {
  std::lock_guard lock(impl_->subscribers_mutex);
  const std::uint64_t id = impl_->next_subscriber++;
  impl_->subscribers.emplace(std::string(uri), std::make_pair(id, std::move(listener)));
  return id;
}

void ResourceRegistry::unsubscribe(std::uint64_t id) const {
  std::lock_guard lock(impl_->subscribers_mutex);
  for (auto it = impl_->subscribers.begin(); it != impl_->subscribers.end(); ++it) {
    if (it->second.first == id) {
      impl_->subscribers.erase(it);
      return;
    }
  }
}

std::size_t ResourceRegistry::notify_updated(std::string_view uri) const {
  std::vector<std::function<void(std::string_view)>> targets;
  {
    std::lock_guard lock(impl_->subscribers_mutex);
    auto [first, last] = impl_->subscribers.equal_range(uri);
    for (auto it = first; it != last; ++it) targets.push_back(it->second.second);
  }
  for (auto& fn : targets) fn(uri);
  return targets.size();
}

void ResourceRegistry::hold_for_owner(std::string_view owner, std::shared_ptr<const void> lease) {
  detail::set_lease(impl_->mutex, impl_->leases, owner, std::move(lease));
}

void ResourceRegistry::set_resolver(std::function<void(std::string_view)> resolver) {
  std::unique_lock lock(impl_->mutex);
  impl_->resolver = std::move(resolver);
}

std::uint64_t ResourceRegistry::generation() const noexcept { return impl_->generation_value(); }
std::uint64_t ResourceRegistry::on_change(std::function<void()> listener) const {
  return impl_->add_listener(std::move(listener));
}
void ResourceRegistry::remove_listener(std::uint64_t id) const { impl_->drop_listener(id); }

void ResourceRegistrar::add(ResourceSpec spec) {
  if (auto r = registry_->add(std::move(spec), extension_id_); !r) throw std::invalid_argument(r.error().message);
}

void ResourceRegistrar::add_template(ResourceTemplateSpec spec) {
  if (auto r = registry_->add_template(std::move(spec), extension_id_); !r) {
    throw std::invalid_argument(r.error().message);
  }
}

Json to_json(const ResourceContents& c) {
  Json doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  doc.AddMember("uri", JsonValue(c.uri.c_str(), static_cast<rapidjson::SizeType>(c.uri.size()), a), a);
  if (!c.mime_type.empty()) {
    doc.AddMember("mimeType", JsonValue(c.mime_type.c_str(), static_cast<rapidjson::SizeType>(c.mime_type.size()), a),
                  a);
  }
  if (c.binary) {
    const std::string b64 = base64_encode(c.blob);
    doc.AddMember("blob", JsonValue(b64.c_str(), static_cast<rapidjson::SizeType>(b64.size()), a), a);
  } else {
    doc.AddMember("text", JsonValue(c.text.c_str(), static_cast<rapidjson::SizeType>(c.text.size()), a), a);
  }
  return doc;
}

Json to_json(const ResourceInfo& info) {
  Json doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  auto put = [&](const char* key, const std::string& value) {
    if (value.empty()) return;
    doc.AddMember(rapidjson::StringRef(key), JsonValue(value.c_str(), static_cast<rapidjson::SizeType>(value.size()), a),
                  a);
  };
  put(info.template_ ? "uriTemplate" : "uri", info.uri);
  put("name", info.name);
  put("title", info.title);
  put("description", info.description);
  put("mimeType", info.mime_type);
  return doc;
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
