#include "ordinaut/prompts.hpp"

#include <algorithm>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <utility>

#include <fmt/format.h>

#include "tools/registry_support.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

ContentBlock ContentBlock::make_text(std::string text) {
  ContentBlock b;
  b.kind = Kind::text;
  b.text = std::move(text);
  return b;
}

ContentBlock ContentBlock::make_image(std::string bytes, std::string mime_type) {
  ContentBlock b;
  b.kind = Kind::image;
  b.data = std::move(bytes);
  b.mime_type = std::move(mime_type);
  return b;
}

ContentBlock ContentBlock::make_audio(std::string bytes, std::string mime_type) {
  ContentBlock b;
  b.kind = Kind::audio;
  b.data = std::move(bytes);
  b.mime_type = std::move(mime_type);
  return b;
}

ContentBlock ContentBlock::make_resource(ResourceContents contents) {
  ContentBlock b;
  b.kind = Kind::resource;
  b.resource = std::move(contents);
  return b;
}

namespace {

struct Entry {
  std::shared_ptr<const void> lease;  // keeps the owner's code alive (hold_for_owner)
  PromptInfo info;
  PromptFunction get;
  CompletionFunction complete;
};

Result<void> check_spec(const PromptSpec& spec, std::string_view owner, bool declared) {
  if (!detail::valid_registry_name(spec.name)) {
    return make_error("invalid_prompt", fmt::format("prompt name \"{}\" is invalid: use 1-128 characters of A-Z a-z "
                                                    "0-9 _ . -",
                                                    json::escape(spec.name)));
  }
  if (owner == "core") {
    if (spec.name.starts_with("ext.")) {
      return make_error("prompt_namespace",
                        fmt::format("prompt {}: names starting with \"ext.\" belong to extensions", spec.name));
    }
  } else {
    const std::string prefix = fmt::format("ext.{}.", owner);
    if (!spec.name.starts_with(prefix) || spec.name.size() == prefix.size()) {
      return make_error("prompt_namespace", fmt::format("prompt {} is outside the namespace of extension '{}': its "
                                                        "prompts must be named {}<name>",
                                                        spec.name, owner, prefix));
    }
  }
  std::set<std::string_view> names;
  for (const PromptArgument& a : spec.arguments) {
    if (a.name.empty()) return make_error("invalid_prompt", fmt::format("prompt {}: an argument has no name", spec.name));
    if (!names.insert(a.name).second) {
      return make_error("invalid_prompt", fmt::format("prompt {}: argument {} is listed twice", spec.name, a.name));
    }
  }
  if (!declared && !spec.get) return make_error("invalid_prompt", fmt::format("prompt {}: get function is empty", spec.name));
  return {};
}

}  // namespace

struct PromptRegistry::Impl : detail::ListenerSet {
  mutable std::shared_mutex mutex;
  std::map<std::string, std::shared_ptr<const Entry>, std::less<>> prompts;
  std::function<void(std::string_view)> resolver;
  std::map<std::string, std::shared_ptr<const void>, std::less<>> leases;  // by owner; under mutex

  std::shared_ptr<const Entry> find(std::string_view name) const {
    std::shared_lock lock(mutex);
    auto it = prompts.find(name);
    return it == prompts.end() ? nullptr : it->second;
  }

  // A missing or declared-only prompt asks the resolver to load its owner.
  std::shared_ptr<const Entry> find_or_resolve(std::string_view name) const {
    auto entry = find(name);
    if (entry && !entry->info.declared) return entry;
    std::function<void(std::string_view)> r;
    {
      std::shared_lock lock(mutex);
      r = resolver;
    }
    if (!r) return entry;
    r(name);
    return find(name);
  }

  Result<void> insert(PromptSpec spec, std::string_view owner, bool declared) {
    if (auto r = check_spec(spec, owner, declared); !r) return r;
    auto entry = std::make_shared<Entry>();
    entry->info = PromptInfo{spec.name, std::move(spec.title), std::move(spec.description), std::move(spec.arguments),
                             std::string(owner), declared};
    if (!declared) {
      entry->get = std::move(spec.get);
      entry->complete = std::move(spec.complete);
    }
    std::shared_ptr<const Entry> replaced;  // freed after the lock (see erase_entries)
    {
      std::unique_lock lock(mutex);
      if (!declared) {
        if (auto lease = leases.find(owner); lease != leases.end()) entry->lease = lease->second;
      }
      auto it = prompts.find(spec.name);
      if (it != prompts.end()) {
        if (!(it->second->info.declared && !declared && it->second->info.owner == owner)) {
          return make_error("duplicate_prompt", fmt::format("prompt {} is already {} by '{}'", spec.name,
                                                            it->second->info.declared ? "declared" : "registered",
                                                            it->second->info.owner));
        }
        replaced = std::exchange(it->second, std::move(entry));
      } else {
        prompts.emplace(spec.name, std::move(entry));
      }
    }
    changed();
    return {};
  }

  std::size_t remove_if(const std::function<bool(const Entry&)>& pred) {
    const std::size_t removed = detail::erase_entries(mutex, prompts, pred);
    if (removed > 0) changed();
    return removed;
  }
};

PromptRegistry::PromptRegistry() : impl_(std::make_unique<Impl>()) {}
PromptRegistry::~PromptRegistry() = default;

Result<void> PromptRegistry::add(PromptSpec spec, std::string_view owner) {
  return impl_->insert(std::move(spec), owner, false);
}

Result<void> PromptRegistry::declare(PromptSpec spec, std::string_view owner) {
  return impl_->insert(std::move(spec), owner, true);
}

std::size_t PromptRegistry::remove_owner(std::string_view owner) {
  return impl_->remove_if([&](const Entry& e) { return e.info.owner == owner; });
}

std::size_t PromptRegistry::remove_registered(std::string_view owner) {
  return impl_->remove_if([&](const Entry& e) { return e.info.owner == owner && !e.info.declared; });
}

std::vector<PromptInfo> PromptRegistry::list() const {
  std::shared_lock lock(impl_->mutex);
  std::vector<PromptInfo> out;
  out.reserve(impl_->prompts.size());
  for (const auto& [name, e] : impl_->prompts) out.push_back(e->info);
  return out;
}

std::optional<PromptInfo> PromptRegistry::info(std::string_view name) const {
  auto e = impl_->find(name);
  if (!e) return std::nullopt;
  return e->info;
}

Result<PromptResult> PromptRegistry::get(std::string_view name, const StringMap& arguments) const {
  auto entry = impl_->find_or_resolve(name);
  if (!entry) return make_error("prompt_not_found", fmt::format("no prompt named {}", json::escape(name)));
  if (entry->info.declared) {
    return make_error("extension_unavailable",
                      fmt::format("prompt {} is declared by extension '{}', which did not load or did not register it "
                                  "(see /ext/status)",
                                  name, entry->info.owner));
  }
  for (const auto& argument : arguments) {
    const std::string& key = argument.first;  // named: clang 14 cannot capture a structured binding
    const auto& args = entry->info.arguments;
    if (std::none_of(args.begin(), args.end(), [&](const PromptArgument& a) { return a.name == key; })) {
      return make_error("invalid_arguments",
                        fmt::format("prompt {} has no argument named {}", name, json::escape(key)));
    }
  }
  for (const PromptArgument& a : entry->info.arguments) {
    if (a.required && arguments.find(a.name) == arguments.end()) {
      return make_error("invalid_arguments", fmt::format("prompt {}: argument {} is required", name, a.name));
    }
  }
  try {
    return entry->get(arguments);
  } catch (const PromptError& e) {
    return make_error(e.code(), fmt::format("prompt {}: {}", name, e.what()));
  } catch (const std::exception& e) {
    return make_error("prompt_failed", fmt::format("prompt {} failed: {}", name, e.what()));
  } catch (...) {
    return make_error("prompt_failed", fmt::format("prompt {} failed with a non-standard exception", name));
  }
}

Result<Completion> PromptRegistry::complete(std::string_view name, std::string_view argument, std::string_view value,
                                            const StringMap& context) const {
  auto entry = impl_->find_or_resolve(name);
  if (!entry) return make_error("prompt_not_found", fmt::format("no prompt named {}", json::escape(name)));
  const auto& args = entry->info.arguments;
  if (std::none_of(args.begin(), args.end(), [&](const PromptArgument& a) { return a.name == argument; })) {
    return make_error("invalid_params",
                      fmt::format("prompt {} has no argument named {}", name, json::escape(argument)));
  }
  if (entry->info.declared) {
    return make_error("extension_unavailable",
                      fmt::format("prompt {} is declared by extension '{}', which did not load", name,
                                  entry->info.owner));
  }
  if (!entry->complete) return Completion{};
  try {
    return detail::make_completion(entry->complete(argument, value, context));
  } catch (const std::exception& e) {
    return make_error("completion_failed", fmt::format("completion for prompt {}: {}", name, e.what()));
  }
}

void PromptRegistry::hold_for_owner(std::string_view owner, std::shared_ptr<const void> lease) {
  detail::set_lease(impl_->mutex, impl_->leases, owner, std::move(lease));
}

void PromptRegistry::set_resolver(std::function<void(std::string_view)> resolver) {
  std::unique_lock lock(impl_->mutex);
  impl_->resolver = std::move(resolver);
}

std::uint64_t PromptRegistry::generation() const noexcept { return impl_->generation_value(); }
std::uint64_t PromptRegistry::on_change(std::function<void()> listener) const {
  return impl_->add_listener(std::move(listener));
}
void PromptRegistry::remove_listener(std::uint64_t id) const { impl_->drop_listener(id); }

void PromptRegistrar::add(PromptSpec spec) {
  if (auto r = registry_->add(std::move(spec), extension_id_); !r) throw std::invalid_argument(r.error().message);
}

namespace {

void put(Json& doc, JsonValue& into, const char* key, std::string_view value) {
  auto& a = doc.GetAllocator();
  into.AddMember(rapidjson::StringRef(key),
                 JsonValue(value.data(), static_cast<rapidjson::SizeType>(value.size()), a), a);
}

void write_block(Json& doc, JsonValue& out, const ContentBlock& b) {
  auto& a = doc.GetAllocator();
  out.SetObject();
  switch (b.kind) {
    case ContentBlock::Kind::text:
      put(doc, out, "type", "text");
      put(doc, out, "text", b.text);
      break;
    case ContentBlock::Kind::image:
    case ContentBlock::Kind::audio: {
      put(doc, out, "type", b.kind == ContentBlock::Kind::image ? "image" : "audio");
      put(doc, out, "data", base64_encode(b.data));
      put(doc, out, "mimeType", b.mime_type);
      break;
    }
    case ContentBlock::Kind::resource: {
      put(doc, out, "type", "resource");
      Json r = to_json(b.resource);
      out.AddMember("resource", JsonValue(r, a), a);
      break;
    }
  }
}

}  // namespace

Json to_json(const ContentBlock& block) {
  Json doc;
  write_block(doc, doc, block);
  return doc;
}

Json to_json(const PromptResult& result) {
  Json doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  if (!result.description.empty()) put(doc, doc, "description", result.description);
  JsonValue messages(rapidjson::kArrayType);
  for (const PromptMessage& m : result.messages) {
    JsonValue msg(rapidjson::kObjectType);
    put(doc, msg, "role", m.role);
    JsonValue content;
    write_block(doc, content, m.content);
    msg.AddMember("content", content, a);
    messages.PushBack(msg, a);
  }
  doc.AddMember("messages", messages, a);
  return doc;
}

Json to_json(const PromptInfo& info) {
  Json doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  put(doc, doc, "name", info.name);
  if (!info.title.empty()) put(doc, doc, "title", info.title);
  if (!info.description.empty()) put(doc, doc, "description", info.description);
  if (!info.arguments.empty()) {
    JsonValue args(rapidjson::kArrayType);
    for (const PromptArgument& arg : info.arguments) {
      JsonValue v(rapidjson::kObjectType);
      put(doc, v, "name", arg.name);
      if (!arg.title.empty()) put(doc, v, "title", arg.title);
      if (!arg.description.empty()) put(doc, v, "description", arg.description);
      v.AddMember("required", arg.required, a);
      args.PushBack(v, a);
    }
    doc.AddMember("arguments", args, a);
  }
  return doc;
}

Json to_json(const Completion& completion) {
  Json doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  JsonValue values(rapidjson::kArrayType);
  for (const std::string& v : completion.values) {
    values.PushBack(JsonValue(v.c_str(), static_cast<rapidjson::SizeType>(v.size()), a), a);
  }
  JsonValue c(rapidjson::kObjectType);
  c.AddMember("values", values, a);
  c.AddMember("total", static_cast<std::uint64_t>(completion.total), a);
  c.AddMember("hasMore", completion.has_more, a);
  doc.AddMember("completion", c, a);
  return doc;
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
