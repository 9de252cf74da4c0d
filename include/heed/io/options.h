// A self-documenting schema for YAML configs: every option is declared once, with its dotted key, type,
// default, allowed range and help line, and bound to a field of a C++ struct. From that one table come
// the YAML reader (with file:line errors and did-you-mean), `--set key=value` overrides, `--help-config`
// and `--dump-config`. Marian does the same for its options; the point is that no option can exist
// without a default and a help line, and that the help can never drift from the code.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace heed::io {

// A value as the user wrote it: YAML text, or the right-hand side of --set.
struct OptionValue {
  std::string text;
  bool is_list = false;
  std::vector<std::string> items;  // when is_list
};

// One declared option. The binding is type-erased so that one schema can describe a whole struct tree.
struct OptionSpec {
  std::string key;         // dotted: "optimizer.lr"
  std::string type;        // "int", "float", "bool", "string" or "list"
  std::string help;
  std::vector<std::string> choices;  // strings only; empty = any
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;
  // Parses `value` into the bound field, checking it against this spec; throws heed::Error naming
  // `origin` (file:line, or --set).
  std::function<void(void* root, const OptionValue& value, const OptionSpec& spec, const std::string& origin)> set;
  // The field's current value as YAML text (lists as [a, b]).
  std::function<std::string(const void* root)> get;

  OptionSpec& positive() { return at_least(0, true); }
  OptionSpec& at_least(double lo, bool exclusive = false) {
    min = lo;
    min_exclusive = exclusive;
    return *this;
  }
  OptionSpec& at_most(double hi) {
    max = hi;
    return *this;
  }
  OptionSpec& one_of(std::vector<std::string> allowed) {
    choices = std::move(allowed);
    return *this;
  }
};

// The typed parts, shared by every Options<Root>.
namespace option_detail {
template <typename T>
struct Codec;
template <>
struct Codec<int64_t> {
  static constexpr const char* type = "int";
  static int64_t parse(const OptionValue& v, const OptionSpec& spec, const std::string& origin);
  static std::string show(const int64_t& v);
};
template <>
struct Codec<double> {
  static constexpr const char* type = "float";
  static double parse(const OptionValue& v, const OptionSpec& spec, const std::string& origin);
  static std::string show(const double& v);
};
template <>
struct Codec<float> {
  static constexpr const char* type = "float";
  static float parse(const OptionValue& v, const OptionSpec& spec, const std::string& origin);
  static std::string show(const float& v);
};
template <>
struct Codec<bool> {
  static constexpr const char* type = "bool";
  static bool parse(const OptionValue& v, const OptionSpec& spec, const std::string& origin);
  static std::string show(const bool& v);
};
template <>
struct Codec<std::string> {
  static constexpr const char* type = "string";
  static std::string parse(const OptionValue& v, const OptionSpec& spec, const std::string& origin);
  static std::string show(const std::string& v);
};
template <>
struct Codec<std::vector<std::string>> {
  static constexpr const char* type = "list";
  static std::vector<std::string> parse(const OptionValue& v, const OptionSpec& spec, const std::string& origin);
  static std::string show(const std::vector<std::string>& v);
};

void load_file(const std::vector<OptionSpec>& specs, void* root, const std::string& path);
void set_assignment(const std::vector<OptionSpec>& specs, void* root, const std::string& assignment);
std::string dump_yaml(const std::vector<OptionSpec>& specs, const void* root, bool with_help);
}  // namespace option_detail

template <typename Root>
class Options {
 public:
  // Declares `key`, bound to the field `access(root)` returns; its value in a default-constructed Root is
  // the documented default. The returned spec takes ranges and choices.
  template <typename T, typename Access>
  OptionSpec& add(const std::string& key, Access access, const std::string& help);

  // Reads a YAML file: every key must be declared. Errors name the file, the line and the key.
  void load_yaml(Root& root, const std::string& path) const { option_detail::load_file(specs_, &root, path); }
  // `key=value`, as given to --set.
  void set(Root& root, const std::string& assignment) const {
    option_detail::set_assignment(specs_, &root, assignment);
  }
  // The effective config as YAML, grouped by the first part of the key.
  std::string dump(const Root& root) const { return option_detail::dump_yaml(specs_, &root, false); }
  // Every option with its type, default, range and help, as commented YAML.
  std::string help() const {
    const Root defaults;
    return option_detail::dump_yaml(specs_, &defaults, true);
  }
  const std::vector<OptionSpec>& specs() const { return specs_; }

 private:
  std::vector<OptionSpec> specs_;
};


template <typename Root>
template <typename T, typename Access>
OptionSpec& Options<Root>::add(const std::string& key, Access access, const std::string& help) {
  OptionSpec spec;
  spec.key = key;
  spec.type = option_detail::Codec<T>::type;
  spec.help = help;
  spec.set = [access](void* root, const OptionValue& value, const OptionSpec& self, const std::string& origin) {
    access(*static_cast<Root*>(root)) = option_detail::Codec<T>::parse(value, self, origin);
  };
  spec.get = [access](const void* root) {
    // `access` returns a mutable reference; reading through it does not modify the root.
    return option_detail::Codec<T>::show(access(*const_cast<Root*>(static_cast<const Root*>(root))));
  };
  specs_.push_back(std::move(spec));
  return specs_.back();
}

}  // namespace heed::io
