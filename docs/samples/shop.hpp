// The sample extension of docs/writing-extensions.md: routes with a validated
// body, a namespaced tool, an event, a business metric and a health check.
// Built as a module (shop.cpp) and unit-tested (shop_test.cpp), so the docs
// cannot drift from the API.
//
// The class lives in a header so that tests can construct it directly; the
// module's source holds only the export macro.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include <ordinaut/extension.hpp>

namespace docs_sample {

// Request body of POST /orders and input of the tool ext.shop.quote.
inline constexpr const char* kOrderSchema = R"({
  "type": "object",
  "required": ["sku", "quantity"],
  "additionalProperties": false,
  "properties": {
    "sku": {"type": "string", "enum": ["apple", "pear", "plum"]},
    "quantity": {"type": "integer", "minimum": 1, "maximum": 100}
  }
})";

class Shop final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    // id and version must equal extension.json's, or the host refuses the module.
    return {"shop", "Shop", "1.0.0", "Quotes prices and takes orders"};
  }

  ordinaut::CapabilitySet requested_capabilities() const override {
    using ordinaut::Capability;
    return {Capability::ROUTES, Capability::TOOLS, Capability::EVENTS_PUB};
  }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    using ordinaut::Capability;
    // Exported as ext_shop_orders_total by the observability extension.
    orders_total_ = &context.metrics().counter("orders_total", "Orders placed");
    // Optional capability: work without it rather than fail setup().
    if (context.granted(Capability::EVENTS_PUB)) publisher_ = &context.events_publisher();
    if (context.granted(Capability::TOOLS)) {
      context.tool_registrar().add({
          .name = context.tool_registrar().prefix() + "quote",  // "ext.shop.quote"
          .description = "Price of `quantity` units of `sku`, in cents",
          .input_schema = kOrderSchema,
          .output_schema = R"({"type":"object","required":["total_cents"],
                               "properties":{"total_cents":{"type":"integer"}}})",
          .function = [](const ordinaut::JsonValue& input, ordinaut::ToolContext&) {
            ordinaut::Json out = ordinaut::json::object();
            out.AddMember("total_cents", total_cents(input), out.GetAllocator());
            return out;
          },
      });
    }

    ordinaut::Router router;
    router.post("/orders", [this](ordinaut::Request& r) { return place(r); },
                {.summary = "Place an order", .request_schema = kOrderSchema});
    router.get("/orders/{id}", [this](ordinaut::Request& r) { return find(r); }, {.summary = "One order"});
    return router;
  }

  ordinaut::Json health_checks() const override {
    ordinaut::Json checks = ordinaut::json::object();
    auto& a = checks.GetAllocator();
    ordinaut::JsonValue catalog(rapidjson::kObjectType);
    catalog.AddMember("status", "ok", a);
    catalog.AddMember("items", static_cast<int>(prices().size()), a);
    checks.AddMember("catalog", catalog, a);
    return checks;
  }

 private:
  struct Order {
    std::string sku;
    int quantity = 0;
    std::int64_t total_cents = 0;
  };

  static const std::map<std::string, std::int64_t>& prices() {
    static const std::map<std::string, std::int64_t> kPrices = {{"apple", 40}, {"pear", 55}, {"plum", 30}};
    return kPrices;
  }

  // REQUIRES: `input` valid against kOrderSchema (the host checked it).
  static std::int64_t total_cents(const ordinaut::JsonValue& input) {
    return prices().at(input["sku"].GetString()) * input["quantity"].GetInt();
  }

  static ordinaut::Json to_json(std::uint64_t id, const Order& order) {
    ordinaut::Json doc = ordinaut::json::object();
    auto& a = doc.GetAllocator();
    doc.AddMember("order_id", id, a);
    doc.AddMember("sku", ordinaut::JsonValue(order.sku.c_str(), a), a);
    doc.AddMember("quantity", order.quantity, a);
    doc.AddMember("total_cents", order.total_cents, a);
    return doc;
  }

  ordinaut::Response place(ordinaut::Request& request) {
    auto parsed = request.json();  // valid JSON, valid against kOrderSchema: the host checked both
    const ordinaut::JsonValue& body = parsed.value();
    Order order{body["sku"].GetString(), body["quantity"].GetInt(), total_cents(body)};
    std::uint64_t id;
    {
      std::lock_guard lock(mutex_);  // handlers run concurrently
      id = ++last_id_;
      orders_[id] = order;
    }
    orders_total_->inc();
    ordinaut::Json doc = to_json(id, order);
    if (publisher_ != nullptr) {
      // The host stamps source = "shop"; a failed publish does not undo the order.
      (void)publisher_->publish("shop.order_placed", doc);
    }
    return ordinaut::Response::json(201, doc);
  }

  ordinaut::Response find(ordinaut::Request& request) {
    const std::string id_text(request.param("id"));
    std::uint64_t id = 0;
    try {
      std::size_t used = 0;
      id = std::stoull(id_text, &used);
      if (used != id_text.size()) throw std::invalid_argument(id_text);
    } catch (const std::exception&) {
      return ordinaut::Response::error(400, "bad_request", "order id must be a whole number",
                                       R"({"parameter":"id"})");
    }
    std::lock_guard lock(mutex_);
    auto it = orders_.find(id);
    if (it == orders_.end()) {
      return ordinaut::Response::error(404, "not_found", "no order " + id_text, R"({"parameter":"id"})");
    }
    return ordinaut::Response::json(200, to_json(id, it->second));
  }

  ordinaut::Counter* orders_total_ = nullptr;
  const ordinaut::EventPublisher* publisher_ = nullptr;  // valid until on_shutdown() returns
  std::mutex mutex_;
  std::uint64_t last_id_ = 0;
  std::map<std::uint64_t, Order> orders_;
};

}  // namespace docs_sample
