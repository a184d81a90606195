// Pipeline templates and scope paths; see template.hpp for the rules.
#include "template.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace ordinaut::scheduler {
namespace {

// json::parse refuses nesting deeper than 512; values built in code get the
// same bound here, so rendering never recurses without limit.
constexpr int kMaxDepth = 512;

Error template_error(std::string message, std::string pointer = {}) {
  Error e = make_error("template_error", std::move(message));
  e.pointer = std::move(pointer);
  return e;
}

std::string_view trim_spaces(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_root(std::string_view name) {
  return std::find(std::begin(kScopeRoots), std::end(kScopeRoots), name) != std::end(kScopeRoots);
}

// Parses `text` into `out`; returns what is wrong, or "" when it is fine.
std::string path_problem(std::string_view text, ScopePath& out) {
  out = ScopePath{};
  out.text = std::string(text);
  if (text.empty()) return "the path is empty";
  std::size_t start = 0;
  bool first = true;
  while (true) {
    std::size_t dot = text.find('.', start);
    std::string_view part = text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (part.empty()) return first ? "the root is empty" : "a segment is empty (two dots, or a dot at an end)";
    for (char c : part) {
      if (!is_path_char(c)) {
        return fmt::format("the character '{}' is not allowed; segments use letters, digits, '_' and '-'",
                           static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f
                               ? fmt::format("\\x{:02x}", static_cast<unsigned char>(c))
                               : std::string(1, c));
      }
    }
    if (first) {
      if (!is_root(part)) {
        return fmt::format("unknown root \"{}\"; paths start with params, steps, now or event", part);
      }
      out.root = std::string(part);
      first = false;
    } else {
      if (out.segments.size() == kMaxPathSegments) {
        return fmt::format("more than {} segments after the root", kMaxPathSegments);
      }
      out.segments.emplace_back(part);
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (out.root == "now" && !out.segments.empty()) return "now is a string and has no members";
  return {};
}

const JsonValue* find_member(const JsonValue& object, std::string_view name) {
  JsonValue key(rapidjson::StringRef(name.data(), name.size()));
  auto it = object.FindMember(key);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::optional<std::size_t> parse_index(std::string_view segment) {
  if (segment.empty() || segment.size() > 9) return std::nullopt;
  std::size_t index = 0;
  auto [end, ec] = std::from_chars(segment.data(), segment.data() + segment.size(), index);
  if (ec != std::errc{} || end != segment.data() + segment.size()) return std::nullopt;
  return index;
}

// The text a value takes when embedded in a longer string.
void append_text(std::string& out, const JsonValue& value) {
  if (value.IsString()) {
    out.append(value.GetString(), value.GetStringLength());
  } else {
    out += json::dump(value);
  }
}

std::string template_text(const ScopePath& path) { return "${" + path.text + "}"; }

// Calls `on_string(value, pointer)` for each string inside `value`, in
// document order; stops at the first error.
template <typename F>
Result<void> walk_strings(const JsonValue& value, std::string& pointer, int depth, F& on_string) {
  if (depth > kMaxDepth) return template_error(fmt::format("nested deeper than {} levels", kMaxDepth), pointer);
  if (value.IsString()) return on_string(value, pointer);
  const std::size_t size = pointer.size();
  if (value.IsObject()) {
    for (const auto& m : value.GetObject()) {
      pointer += "/" + json::pointer_token(std::string_view(m.name.GetString(), m.name.GetStringLength()));
      auto r = walk_strings(m.value, pointer, depth + 1, on_string);
      if (!r) return r;
      pointer.resize(size);
    }
  } else if (value.IsArray()) {
    std::size_t i = 0;
    for (const auto& item : value.GetArray()) {
      pointer += '/';
      pointer += std::to_string(i++);
      auto r = walk_strings(item, pointer, depth + 1, on_string);
      if (!r) return r;
      pointer.resize(size);
    }
  }
  return {};
}

Result<void> render_into(const JsonValue& in, JsonValue& out, Json::AllocatorType& alloc, const JsonValue& scope,
                         std::string& pointer, int depth) {
  if (depth > kMaxDepth) return template_error(fmt::format("nested deeper than {} levels", kMaxDepth), pointer);
  const std::size_t size = pointer.size();
  if (in.IsString()) {
    std::string_view text(in.GetString(), in.GetStringLength());
    if (text.find("${") == std::string_view::npos) {
      out.CopyFrom(in, alloc);
      return {};
    }
    auto pieces = parse_template(text);
    if (!pieces) return template_error(pieces.error().message, pointer);
    if (pieces->size() == 1 && (*pieces)[0].is_path) {  // exactly one template: keep the type
      std::string why;
      const JsonValue* v = resolve_path(scope, (*pieces)[0].path, &why);
      if (v == nullptr) return template_error(fmt::format("{}: {}", template_text((*pieces)[0].path), why), pointer);
      out.CopyFrom(*v, alloc);
      return {};
    }
    std::string result;
    for (const auto& piece : *pieces) {
      if (!piece.is_path) {
        result += piece.literal;
        continue;
      }
      std::string why;
      const JsonValue* v = resolve_path(scope, piece.path, &why);
      if (v == nullptr) return template_error(fmt::format("{}: {}", template_text(piece.path), why), pointer);
      append_text(result, *v);
    }
    out.SetString(result.data(), static_cast<rapidjson::SizeType>(result.size()), alloc);
    return {};
  }
  if (in.IsObject()) {
    out.SetObject();
    for (const auto& m : in.GetObject()) {
      pointer += "/" + json::pointer_token(std::string_view(m.name.GetString(), m.name.GetStringLength()));
      JsonValue v;
      auto r = render_into(m.value, v, alloc, scope, pointer, depth + 1);
      if (!r) return r;
      pointer.resize(size);
      out.AddMember(JsonValue(m.name, alloc), v, alloc);
    }
    return {};
  }
  if (in.IsArray()) {
    out.SetArray();
    out.Reserve(in.Size(), alloc);
    std::size_t i = 0;
    for (const auto& item : in.GetArray()) {
      pointer += '/';
      pointer += std::to_string(i++);
      JsonValue v;
      auto r = render_into(item, v, alloc, scope, pointer, depth + 1);
      if (!r) return r;
      pointer.resize(size);
      out.PushBack(v, alloc);
    }
    return {};
  }
  out.CopyFrom(in, alloc);
  return {};
}

}  // namespace

bool is_path_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

Result<ScopePath> parse_scope_path(std::string_view text) {
  ScopePath path;
  std::string problem = path_problem(text, path);
  if (!problem.empty()) return template_error(fmt::format("path \"{}\": {}", text, problem));
  return path;
}

const JsonValue* resolve_path(const JsonValue& scope, const ScopePath& path, std::string* why) {
  auto fail = [&](std::string message) -> const JsonValue* {
    if (why != nullptr) *why = std::move(message);
    return nullptr;
  };
  const JsonValue* current = scope.IsObject() ? find_member(scope, path.root) : nullptr;
  if (current == nullptr) return fail(fmt::format("the scope has no {}", path.root));
  std::string where = path.root;
  for (const auto& segment : path.segments) {
    if (current->IsObject()) {
      const JsonValue* next = find_member(*current, segment);
      if (next == nullptr) return fail(fmt::format("{} has no member \"{}\"", where, segment));
      current = next;
    } else if (current->IsArray()) {
      auto index = parse_index(segment);
      if (!index) return fail(fmt::format("{} is an array and \"{}\" is not an index", where, segment));
      if (*index >= current->Size()) {
        return fail(fmt::format("{} has {} element{}, no index {}", where, current->Size(),
                                current->Size() == 1 ? "" : "s", *index));
      }
      current = &(*current)[static_cast<rapidjson::SizeType>(*index)];
    } else if (current->IsNull() && where == "event") {
      return fail("there is no event: the run was not started by one");
    } else {
      return fail(fmt::format("cannot look up \"{}\" in {} (a {})", segment, where, json::type_name(*current)));
    }
    where += '.';
    where += segment;
  }
  return current;
}

Result<std::vector<TemplatePiece>> parse_template(std::string_view text) {
  std::vector<TemplatePiece> pieces;
  std::string literal;
  auto flush = [&] {
    if (literal.empty()) return;
    TemplatePiece piece;
    piece.literal = std::move(literal);
    pieces.push_back(std::move(piece));
    literal.clear();
  };
  std::size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "$${") == 0) {
      literal += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") == 0) {
      std::size_t close = text.find('}', i + 2);
      if (close == std::string_view::npos) {
        return template_error(
            fmt::format("unterminated \"${{\" at offset {} (write \"$${{\" for a literal \"${{\")", i));
      }
      std::string_view inner = trim_spaces(text.substr(i + 2, close - i - 2));
      if (inner.empty()) return template_error(fmt::format("empty \"${{}}\" at offset {}", i));
      TemplatePiece piece;
      piece.is_path = true;
      std::string problem = path_problem(inner, piece.path);
      if (!problem.empty()) return template_error(fmt::format("${{{}}}: {}", excerpt(inner), problem));
      flush();
      pieces.push_back(std::move(piece));
      i = close + 1;
      continue;
    }
    literal += text[i++];
  }
  flush();
  return pieces;
}

bool has_template(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "$${") == 0) {
      i += 3;
    } else if (text.compare(i, 2, "${") == 0) {
      return true;
    } else {
      ++i;
    }
  }
  return false;
}

bool contains_template(const JsonValue& value) {
  bool found = false;
  std::string pointer;
  auto on_string = [&](const JsonValue& s, const std::string&) -> Result<void> {
    if (has_template(std::string_view(s.GetString(), s.GetStringLength()))) {
      found = true;
      return make_error("found", "");  // stops the walk
    }
    return {};
  };
  auto r = walk_strings(value, pointer, 0, on_string);
  // Too deep to look through: say yes, so that callers do not treat it as a
  // plain value; rendering it reports the depth.
  return found || !r;
}

Result<void> for_each_template(
    const JsonValue& value,
    const std::function<Result<void>(const std::string& pointer, const std::vector<TemplatePiece>& pieces)>& visit) {
  std::string pointer;
  auto on_string = [&](const JsonValue& s, const std::string& where) -> Result<void> {
    std::string_view text(s.GetString(), s.GetStringLength());
    if (!has_template(text)) return {};
    auto pieces = parse_template(text);
    if (!pieces) return template_error(pieces.error().message, where);
    auto r = visit(where, *pieces);
    if (!r && r.error().pointer.empty()) {
      Error e = r.error();
      e.pointer = where;
      return e;
    }
    return r;
  };
  return walk_strings(value, pointer, 0, on_string);
}

Result<Json> render(const JsonValue& value, const JsonValue& scope) {
  Json out;
  std::string pointer;
  auto r = render_into(value, out, out.GetAllocator(), scope, pointer, 0);
  if (!r) return r.error();
  return out;
}

std::string excerpt(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
  return std::string(text.substr(0, cut)) + "...";
}

}  // namespace ordinaut::scheduler
