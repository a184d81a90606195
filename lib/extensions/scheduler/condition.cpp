// The `if` language: a recursive-descent parser with a depth bound, and an
// evaluator over the scope. See condition.hpp for the grammar and semantics.
#include "condition.hpp"

#include <fmt/format.h>

namespace ordinaut::scheduler {

struct Condition::Node {
  enum class Kind { literal, path, negate, all, any, compare };
  enum class Op { eq, ne, lt, le, gt, ge };
  Kind kind = Kind::literal;
  Json literal;                                 // literal
  ScopePath path;                               // path
  Op op = Op::eq;                               // compare
  std::vector<std::unique_ptr<Node>> children;  // negate: 1, all/any: 2+, compare: 2
};

namespace {

using Node = Condition::Node;
using NodePtr = std::unique_ptr<Node>;
using NodeKind = Node::Kind;
using CompareOp = Node::Op;

const JsonValue& json_true() {
  static const JsonValue value(rapidjson::kTrueType);
  return value;
}
const JsonValue& json_false() {
  static const JsonValue value(rapidjson::kFalseType);
  return value;
}
const JsonValue& json_null() {
  static const JsonValue value(rapidjson::kNullType);
  return value;
}

enum class TokenKind { end, number, string, name, lparen, rparen, bang, op, and_, or_ };

struct Token {
  TokenKind kind = TokenKind::end;
  std::size_t position = 0;  // byte offset of its first character
  std::string_view text;     // as written (names, numbers, operators)
  std::string value;         // strings: the unescaped value
  CompareOp op = CompareOp::eq;
};

const char* describe(const Token& t) {
  switch (t.kind) {
    case TokenKind::end: return "the end";
    case TokenKind::number: return "a number";
    case TokenKind::string: return "a string";
    case TokenKind::name: return "a name";
    case TokenKind::lparen: return "'('";
    case TokenKind::rparen: return "')'";
    case TokenKind::bang: return "'!'";
    case TokenKind::op: return "a comparison";
    case TokenKind::and_: return "'&&'";
    case TokenKind::or_: return "'||'";
  }
  return "?";
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<NodePtr> parse_all(std::vector<ScopePath>& paths) {
    paths_ = &paths;
    auto first = next();
    if (!first) return first.error();
    token_ = std::move(*first);
    if (token_.kind == TokenKind::end) return error(token_.position, "the condition is empty");
    auto node = parse_or();
    if (!node) return node;
    if (token_.kind != TokenKind::end) {
      return error(token_.position, fmt::format("expected '&&', '||' or the end, found {}", describe(token_)));
    }
    return node;
  }

 private:
  Error error(std::size_t position, const std::string& what) const {
    Error e = make_error("invalid_condition", fmt::format("column {}: {}", position + 1, what));
    e.offset = position;
    e.line = 1;
    e.column = position + 1;
    return e;
  }

  Result<void> advance() {
    auto t = next();
    if (!t) return t.error();
    token_ = std::move(*t);
    return {};
  }

  // The lexer: the token starting at pos_ (after spaces).
  Result<Token> next() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
    Token t;
    t.position = pos_;
    if (pos_ >= text_.size()) return t;
    const char c = text_[pos_];
    const char d = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
    auto single = [&](TokenKind kind, std::size_t length) {
      t.kind = kind;
      t.text = text_.substr(pos_, length);
      pos_ += length;
      return t;
    };
    auto compare = [&](CompareOp op, std::size_t length) {
      t.op = op;
      return single(TokenKind::op, length);
    };
    switch (c) {
      case '(': return single(TokenKind::lparen, 1);
      case ')': return single(TokenKind::rparen, 1);
      case '!': return d == '=' ? compare(CompareOp::ne, 2) : single(TokenKind::bang, 1);
      case '=':
        if (d == '=') return compare(CompareOp::eq, 2);
        return error(pos_, "'=' is not an operator; compare with '=='");
      case '<': return d == '=' ? compare(CompareOp::le, 2) : compare(CompareOp::lt, 1);
      case '>': return d == '=' ? compare(CompareOp::ge, 2) : compare(CompareOp::gt, 1);
      case '&':
        if (d == '&') return single(TokenKind::and_, 2);
        return error(pos_, "'&' is not an operator; use '&&'");
      case '|':
        if (d == '|') return single(TokenKind::or_, 2);
        return error(pos_, "'|' is not an operator; use '||'");
      case '\'':
      case '"': return lex_string(t);
      default: break;
    }
    if (is_digit(c) || (c == '-' && is_digit(d))) return lex_number(t);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
      std::size_t end = pos_;
      while (end < text_.size() && (is_path_char(text_[end]) || text_[end] == '.')) ++end;
      t.kind = TokenKind::name;
      t.text = text_.substr(pos_, end - pos_);
      pos_ = end;
      return t;
    }
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return error(pos_, fmt::format("unexpected byte 0x{:02x}", static_cast<unsigned char>(c)));
    }
    return error(pos_, fmt::format("unexpected character '{}'", c));
  }

  Result<Token> lex_number(Token& t) {
    std::size_t end = pos_;
    if (text_[end] == '-') ++end;
    auto digits = [&] {
      while (end < text_.size() && is_digit(text_[end])) ++end;
    };
    digits();
    if (end < text_.size() && text_[end] == '.') {
      ++end;
      digits();
    }
    if (end < text_.size() && (text_[end] == 'e' || text_[end] == 'E')) {
      ++end;
      if (end < text_.size() && (text_[end] == '+' || text_[end] == '-')) ++end;
      digits();
    }
    t.kind = TokenKind::number;
    t.text = text_.substr(pos_, end - pos_);
    // The JSON parser decides what a valid number is (no leading zeros, digits
    // after '.' and 'e') and gives its value.
    auto parsed = json::parse(t.text);
    if (!parsed || !parsed->IsNumber())
      return error(pos_, fmt::format("\"{}\" is not a valid number", excerpt(t.text)));
    pos_ = end;
    return t;
  }

  Result<Token> lex_string(Token& t) {
    const char quote = text_[pos_];
    std::size_t i = pos_ + 1;
    while (i < text_.size() && text_[i] != quote) {
      char c = text_[i];
      if (c == '\\') {
        if (i + 1 >= text_.size()) break;
        switch (text_[i + 1]) {
          case '\\': t.value += '\\'; break;
          case '\'': t.value += '\''; break;
          case '"': t.value += '"'; break;
          case 'n': t.value += '\n'; break;
          case 't': t.value += '\t'; break;
          case 'r': t.value += '\r'; break;
          default:
            return error(
                i, fmt::format("unknown escape '\\{}' in a string; use \\\\ \\' \\\" \\n \\t or \\r", text_[i + 1]));
        }
        i += 2;
        continue;
      }
      t.value += c;
      ++i;
    }
    if (i >= text_.size()) return error(pos_, fmt::format("unterminated string (no closing {})", quote));
    t.kind = TokenKind::string;
    t.text = text_.substr(pos_, i + 1 - pos_);
    pos_ = i + 1;
    return t;
  }

  static NodePtr make(NodeKind kind) {
    auto node = std::make_unique<Node>();
    node->kind = kind;
    return node;
  }

  // A chain of `kind` operands joined by `separator` (|| or &&), kept flat so
  // that long chains do not nest.
  template <typename Operand>
  Result<NodePtr> parse_chain(TokenKind separator, NodeKind kind, Operand operand) {
    auto first = (this->*operand)();
    if (!first) return first;
    if (token_.kind != separator) return first;
    NodePtr node = make(kind);
    node->children.push_back(std::move(*first));
    while (token_.kind == separator) {
      if (auto r = advance(); !r) return r.error();
      auto next_operand = (this->*operand)();
      if (!next_operand) return next_operand;
      node->children.push_back(std::move(*next_operand));
    }
    return node;
  }

  Result<NodePtr> parse_or() { return parse_chain(TokenKind::or_, NodeKind::any, &Parser::parse_and); }
  Result<NodePtr> parse_and() { return parse_chain(TokenKind::and_, NodeKind::all, &Parser::parse_comparison); }

  Result<NodePtr> parse_comparison() {
    auto left = parse_unary();
    if (!left) return left;
    if (token_.kind != TokenKind::op) return left;
    NodePtr node = make(NodeKind::compare);
    node->op = token_.op;
    node->children.push_back(std::move(*left));
    if (auto r = advance(); !r) return r.error();
    auto right = parse_unary();
    if (!right) return right;
    node->children.push_back(std::move(*right));
    if (token_.kind == TokenKind::op) {
      return error(token_.position, "comparisons do not chain; use parentheses and '&&'");
    }
    return node;
  }

  Result<NodePtr> parse_unary() {
    if (token_.kind != TokenKind::bang) return parse_primary();
    if (++depth_ > kMaxConditionDepth) {
      return error(token_.position, fmt::format("nested deeper than {} levels", kMaxConditionDepth));
    }
    if (auto r = advance(); !r) return r.error();
    auto operand = parse_unary();
    if (!operand) return operand;
    --depth_;
    NodePtr node = make(NodeKind::negate);
    node->children.push_back(std::move(*operand));
    return node;
  }

  Result<NodePtr> parse_primary() {
    const Token t = token_;
    switch (t.kind) {
      case TokenKind::lparen: {
        if (++depth_ > kMaxConditionDepth) {
          return error(t.position, fmt::format("nested deeper than {} levels", kMaxConditionDepth));
        }
        if (auto r = advance(); !r) return r.error();
        auto inner = parse_or();
        if (!inner) return inner;
        if (token_.kind != TokenKind::rparen) {
          return error(token_.position, fmt::format("expected ')' to close the '(' at column {}, found {}",
                                                    t.position + 1, describe(token_)));
        }
        --depth_;
        if (auto r = advance(); !r) return r.error();
        return inner;
      }
      case TokenKind::number: {
        NodePtr node = make(NodeKind::literal);
        if (auto r = json::parse_into(node->literal, t.text); !r) return error(t.position, "invalid number");
        if (auto r = advance(); !r) return r.error();
        return node;
      }
      case TokenKind::string: {
        NodePtr node = make(NodeKind::literal);
        node->literal.SetString(t.value.data(), static_cast<rapidjson::SizeType>(t.value.size()),
                                node->literal.GetAllocator());
        if (auto r = advance(); !r) return r.error();
        return node;
      }
      case TokenKind::name: {
        NodePtr node = make(NodeKind::literal);
        if (t.text == "true") {
          node->literal.SetBool(true);
        } else if (t.text == "false") {
          node->literal.SetBool(false);
        } else if (t.text == "null") {
          node->literal.SetNull();
        } else {
          auto path = parse_scope_path(t.text);
          if (!path) return error(t.position, path.error().message);
          node->kind = NodeKind::path;
          node->path = *path;
          paths_->push_back(std::move(*path));
        }
        if (auto r = advance(); !r) return r.error();
        return node;
      }
      default:
        return error(t.position, fmt::format("expected a value (a path, literal, '!' or '('), found {}", describe(t)));
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  Token token_;
  int depth_ = 0;
  std::vector<ScopePath>* paths_ = nullptr;
};

bool less(const JsonValue& a, const JsonValue& b) {
  if (a.IsInt64() && b.IsInt64()) return a.GetInt64() < b.GetInt64();
  if (a.IsUint64() && b.IsUint64()) return a.GetUint64() < b.GetUint64();
  return a.GetDouble() < b.GetDouble();
}

bool compare(CompareOp op, const JsonValue& a, const JsonValue& b) {
  switch (op) {
    case CompareOp::eq: return a == b;
    case CompareOp::ne: return a != b;
    default: break;
  }
  bool lt = false;
  bool gt = false;
  if (a.IsNumber() && b.IsNumber()) {
    lt = less(a, b);
    gt = less(b, a);
  } else if (a.IsString() && b.IsString()) {
    std::string_view x(a.GetString(), a.GetStringLength());
    std::string_view y(b.GetString(), b.GetStringLength());
    lt = x < y;
    gt = y < x;
  } else {
    return false;  // ordering is defined for two numbers or two strings only
  }
  switch (op) {
    case CompareOp::lt: return lt;
    case CompareOp::le: return !gt;
    case CompareOp::gt: return gt;
    case CompareOp::ge: return !lt;
    default: return false;
  }
}

// Depth is bounded by the parser (parentheses and "!" at most 64 levels,
// each adding a constant number of frames).
const JsonValue& eval(const Node& node, const JsonValue& scope) {
  switch (node.kind) {
    case NodeKind::literal: return node.literal;
    case NodeKind::path: {
      const JsonValue* v = resolve_path(scope, node.path);
      return v != nullptr ? *v : json_null();
    }
    case NodeKind::negate: return truthy(eval(*node.children[0], scope)) ? json_false() : json_true();
    case NodeKind::all:
      for (const auto& child : node.children) {
        if (!truthy(eval(*child, scope))) return json_false();
      }
      return json_true();
    case NodeKind::any:
      for (const auto& child : node.children) {
        if (truthy(eval(*child, scope))) return json_true();
      }
      return json_false();
    case NodeKind::compare:
      return compare(node.op, eval(*node.children[0], scope), eval(*node.children[1], scope)) ? json_true()
                                                                                              : json_false();
  }
  return json_null();
}

}  // namespace

bool truthy(const JsonValue& value) {
  switch (value.GetType()) {
    case rapidjson::kNullType:
    case rapidjson::kFalseType: return false;
    case rapidjson::kTrueType: return true;
    case rapidjson::kNumberType: return value.GetDouble() != 0.0;
    case rapidjson::kStringType: return value.GetStringLength() != 0;
    case rapidjson::kArrayType: return !value.Empty();
    case rapidjson::kObjectType: return value.MemberCount() != 0;
  }
  return false;
}

Result<Condition> Condition::parse(std::string_view text) {
  if (text.size() > kMaxConditionLength) {
    return make_error("invalid_condition", fmt::format("the condition is {} bytes long; at most {} are allowed",
                                                       text.size(), kMaxConditionLength));
  }
  Condition condition;
  Parser parser(text);
  auto root = parser.parse_all(condition.paths_);
  if (!root) return root.error();
  condition.text_ = std::string(text);
  condition.root_ = std::shared_ptr<const Node>(std::move(*root));
  return condition;
}

Result<bool> Condition::evaluate(const JsonValue& scope) const {
  if (!scope.IsObject()) return make_error("invalid_condition", "the scope of a condition must be an object");
  return truthy(eval(*root_, scope));
}

}  // namespace ordinaut::scheduler
