// Contributions (contributions.hpp).
#include "host/contributions.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "ordinaut/json.hpp"

namespace ordinaut::detail {

namespace {

// The manifest's text of a schema vs the registry's document.
bool same_json(const std::string& manifest_text, const std::shared_ptr<const Json>& module_doc) {
  if (manifest_text.empty()) return module_doc == nullptr;
  if (module_doc == nullptr) return false;
  auto parsed = json::parse(manifest_text);
  return parsed && *parsed == *module_doc;
}

std::string shown(const std::shared_ptr<const Json>& doc) { return doc ? json::dump(*doc) : std::string("none"); }
std::string shown(const std::string& text) { return text.empty() ? std::string("none") : text; }

class Differences {
 public:
  void add(std::string text) { items_.push_back(std::move(text)); }
  // "field" differs: manifest "a", module "b" (text fields quoted).
  void field(std::string_view what, std::string_view name, std::string_view field, const std::string& manifest,
             const std::string& module) {
    if (manifest == module) return;
    add(fmt::format("{} {}: {} differs (manifest \"{}\", module \"{}\")", what, name, field, json::escape(manifest),
                    json::escape(module)));
  }
  bool empty() const { return items_.empty(); }
  std::string text() const {
    std::string out;
    const std::size_t shown_count = std::min<std::size_t>(items_.size(), 8);
    for (std::size_t i = 0; i < shown_count; ++i) out += (i ? "; " : "") + items_[i];
    if (items_.size() > shown_count) out += fmt::format("; and {} more", items_.size() - shown_count);
    return out;
  }

 private:
  std::vector<std::string> items_;
};

// Declared names against registered ones: each declared entry still only
// declared was never registered; each registered one not declared is extra.
template <typename Info, typename Spec, typename KeyOf, typename SpecKey, typename Compare>
void compare_lists(Differences& d, std::string_view what, const std::vector<Info>& registry_items,
                   const std::vector<Spec>& declared, const std::string& owner, KeyOf key_of, SpecKey spec_key,
                   Compare compare) {
  std::map<std::string, const Spec*, std::less<>> by_key;
  for (const Spec& s : declared) by_key.emplace(spec_key(s), &s);
  for (const Info& info : registry_items) {
    if (info.owner != owner) continue;
    const std::string key = key_of(info);
    auto it = by_key.find(key);
    if (info.declared) {
      d.add(fmt::format("the manifest declares {} {} but the module did not register it", what, key));
    } else if (it == by_key.end()) {
      d.add(fmt::format("the module registered {} {} that the manifest does not declare", what, key));
    } else {
      compare(*it->second, info);
    }
  }
}

}  // namespace

Result<void> declare_contributions(HostServices& services, const Entry& entry) {
  if (!entry.manifest || !entry.manifest->contributes.present) return {};
  const Contributions& c = entry.manifest->contributes;
  const std::string& id = entry.id;
  auto fail = [&](const Error& e) -> Result<void> {
    withdraw_contributions(services, entry);
    return make_error("contribution_conflict",
                      fmt::format("extension '{}': its manifest's contributions cannot be listed: {}", id, e.message));
  };
  for (const std::string& scheme : c.uri_schemes) {
    if (auto r = services.resources->claim_scheme(scheme, id); !r) return fail(r.error());
  }
  for (ToolSpec spec : c.tools) {
    if (auto r = services.tools->declare(std::move(spec), id); !r) return fail(r.error());
  }
  for (ResourceSpec spec : c.resources) {
    if (auto r = services.resources->declare(std::move(spec), id); !r) return fail(r.error());
  }
  for (ResourceTemplateSpec spec : c.resource_templates) {
    if (auto r = services.resources->declare_template(std::move(spec), id); !r) return fail(r.error());
  }
  for (PromptSpec spec : c.prompts) {
    if (auto r = services.prompts->declare(std::move(spec), id); !r) return fail(r.error());
  }
  return {};
}

void withdraw_contributions(HostServices& services, const Entry& entry) {
  services.tools->remove_owner(entry.id);
  services.resources->remove_owner(entry.id);
  services.prompts->remove_owner(entry.id);
}

Result<void> check_contributions(HostServices& services, const Entry& entry) {
  if (!entry.manifest || !entry.manifest->contributes.present) return {};
  const Contributions& c = entry.manifest->contributes;
  Differences d;

  compare_lists(
      d, "tool", services.tools->list(), c.tools, entry.id, [](const ToolInfo& i) { return i.name; },
      [](const ToolSpec& s) { return s.name; },
      [&](const ToolSpec& s, const ToolInfo& i) {
        d.field("tool", s.name, "title", s.title, i.title);
        d.field("tool", s.name, "description", s.description, i.description);
        if (!same_json(s.input_schema, i.input_schema)) {
          d.add(fmt::format("tool {}: inputSchema differs (manifest {}, module {})", s.name, shown(s.input_schema),
                            shown(i.input_schema)));
        }
        if (!same_json(s.output_schema, i.output_schema)) {
          d.add(fmt::format("tool {}: outputSchema differs (manifest {}, module {})", s.name, shown(s.output_schema),
                            shown(i.output_schema)));
        }
        if (!same_json(s.annotations, i.annotations)) {
          d.add(fmt::format("tool {}: annotations differ (manifest {}, module {})", s.name, shown(s.annotations),
                            shown(i.annotations)));
        }
      });

  auto compare_resource = [&](std::string_view what) {
    return [&d, what](const auto& s, const ResourceInfo& i) {
      d.field(what, i.uri, "name", s.name, i.name);
      d.field(what, i.uri, "title", s.title, i.title);
      d.field(what, i.uri, "description", s.description, i.description);
      d.field(what, i.uri, "mimeType", s.mime_type, i.mime_type);
    };
  };
  compare_lists(
      d, "resource", services.resources->list(), c.resources, entry.id, [](const ResourceInfo& i) { return i.uri; },
      [](const ResourceSpec& s) { return s.uri; }, compare_resource("resource"));
  compare_lists(
      d, "resource template", services.resources->list_templates(), c.resource_templates, entry.id,
      [](const ResourceInfo& i) { return i.uri; }, [](const ResourceTemplateSpec& s) { return s.uri_template; },
      compare_resource("resource template"));

  compare_lists(
      d, "prompt", services.prompts->list(), c.prompts, entry.id, [](const PromptInfo& i) { return i.name; },
      [](const PromptSpec& s) { return s.name; },
      [&](const PromptSpec& s, const PromptInfo& i) {
        d.field("prompt", s.name, "title", s.title, i.title);
        d.field("prompt", s.name, "description", s.description, i.description);
        auto describe = [](const std::vector<PromptArgument>& args) {
          std::string out;
          for (const PromptArgument& a : args) out += (out.empty() ? "" : ", ") + a.name + (a.required ? "*" : "");
          return "[" + out + "]";
        };
        const std::string declared = describe(s.arguments);
        const std::string registered = describe(i.arguments);
        if (declared != registered) {
          d.add(fmt::format("prompt {}: arguments differ (manifest {}, module {}; * = required)", s.name, declared,
                            registered));
        }
      });

  if (d.empty()) return {};
  return make_error("contribution_mismatch",
                    fmt::format("what the module registered differs from what extension.json declares: {}", d.text()));
}

}  // namespace ordinaut::detail
