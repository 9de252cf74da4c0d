#include "heed/io/options.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "heed/core/error.h"

namespace heed::io::option_detail {

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string leaf(const std::string& key) { return key.substr(key.rfind('.') + 1); }

const OptionSpec& find_spec(const std::vector<OptionSpec>& specs, const std::string& key, const std::string& origin) {
  for (const OptionSpec& s : specs)
    if (s.key == key) return s;
  // A near miss of the whole key, or the right name in the wrong group.
  const OptionSpec* best = nullptr;
  size_t best_distance = std::max<size_t>(2, key.size() / 4) + 1;
  for (const OptionSpec& s : specs) {
    size_t d = edit_distance(s.key, key);
    if (leaf(s.key) == leaf(key)) d = std::min<size_t>(d, 1);
    if (d < best_distance) best_distance = d, best = &s;
  }
  HEED_CHECK(best == nullptr, "{}: unknown config key '{}'; did you mean '{}'? (heed train --help-config lists them all)",
             origin, key, best ? best->key : "");
  HEED_CHECK(false, "{}: unknown config key '{}' (heed train --help-config lists them all)", origin, key);
}

void check_range(double v, const OptionSpec& spec, const std::string& origin) {
  HEED_CHECK(std::isfinite(v), "{}: {} must be a finite number", origin, spec.key);
  const bool low = spec.min_exclusive ? v <= spec.min : v < spec.min;
  HEED_CHECK(!low, "{}: {} must be {} {}, got {}", origin, spec.key, spec.min_exclusive ? ">" : ">=", spec.min, v);
  HEED_CHECK(v <= spec.max, "{}: {} must be <= {}, got {}", origin, spec.key, spec.max, v);
}

void check_scalar(const OptionValue& v, const OptionSpec& spec, const std::string& origin) {
  HEED_CHECK(!v.is_list, "{}: {} expects a single {}, got a list", origin, spec.key, spec.type);
}

// Walks nested maps down to their leaves, collecting "group.key" -> node. yaml-cpp keeps both entries of
// a key written twice, and the later one would silently win: refused instead.
void flatten(const YAML::Node& node, const std::string& prefix, const std::vector<OptionSpec>& specs,
             const std::string& path, std::vector<std::pair<std::string, YAML::Node>>& out) {
  std::map<std::string, int> first_line;
  for (const auto& kv : node) {
    const std::string key = prefix.empty() ? kv.first.as<std::string>() : prefix + "." + kv.first.as<std::string>();
    const int line = kv.first.Mark().line + 1;
    const auto [first, fresh] = first_line.emplace(key, line);
    HEED_CHECK(fresh, "{}:{}: duplicate key '{}' (first at line {}): remove one of them", path, line, key,
               first->second);
    const bool is_group = std::any_of(specs.begin(), specs.end(),
                                      [&](const OptionSpec& s) { return s.key.rfind(key + ".", 0) == 0; });
    if (kv.second.IsMap() && is_group) {
      flatten(kv.second, key, specs, path, out);
    } else if (is_group) {
      HEED_CHECK(false, "{}:{}: '{}' is a group of options and needs a mapping under it", path,
                 kv.first.Mark().line + 1, key);
    } else {
      out.emplace_back(key, kv.second);
      find_spec(specs, key, fmt::format("{}:{}", path, kv.first.Mark().line + 1));
    }
  }
}

template <typename Int>
Int parse_integer(const std::string& text, bool& ok) {
  Int value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  ok = ec == std::errc() && end == text.data() + text.size();
  return value;
}

}  // namespace

int64_t Codec<int64_t>::parse(const OptionValue& v, const OptionSpec& spec, const std::string& origin) {
  check_scalar(v, spec, origin);
  bool ok = false;
  int64_t value = parse_integer<int64_t>(v.text, ok);
  if (!ok) {  // 1e6 and 4000.0 are integers too, as people write them
    char* end = nullptr;
    const double d = std::strtod(v.text.c_str(), &end);
    ok = !v.text.empty() && *end == '\0' && std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9e18;
    value = static_cast<int64_t>(d);
  }
  HEED_CHECK(ok, "{}: {} expects an integer, got '{}'", origin, spec.key, v.text);
  check_range(static_cast<double>(value), spec, origin);
  return value;
}
std::string Codec<int64_t>::show(const int64_t& v) { return std::to_string(v); }

double Codec<double>::parse(const OptionValue& v, const OptionSpec& spec, const std::string& origin) {
  check_scalar(v, spec, origin);
  char* end = nullptr;
  const double value = std::strtod(v.text.c_str(), &end);
  HEED_CHECK(!v.text.empty() && *end == '\0', "{}: {} expects a number, got '{}'", origin, spec.key, v.text);
  check_range(value, spec, origin);
  return value;
}
std::string Codec<double>::show(const double& v) { return fmt::format("{}", v); }

float Codec<float>::parse(const OptionValue& v, const OptionSpec& spec, const std::string& origin) {
  return static_cast<float>(Codec<double>::parse(v, spec, origin));
}
std::string Codec<float>::show(const float& v) { return fmt::format("{}", v); }

bool Codec<bool>::parse(const OptionValue& v, const OptionSpec& spec, const std::string& origin) {
  check_scalar(v, spec, origin);
  if (v.text == "true" || v.text == "yes" || v.text == "on") return true;
  if (v.text == "false" || v.text == "no" || v.text == "off") return false;
  HEED_CHECK(false, "{}: {} expects true or false, got '{}'", origin, spec.key, v.text);
}
std::string Codec<bool>::show(const bool& v) { return v ? "true" : "false"; }

std::string Codec<std::string>::parse(const OptionValue& v, const OptionSpec& spec, const std::string& origin) {
  check_scalar(v, spec, origin);
  if (!spec.choices.empty()) {
    HEED_CHECK(std::find(spec.choices.begin(), spec.choices.end(), v.text) != spec.choices.end(),
               "{}: {} must be one of {}, got '{}'", origin, spec.key, fmt::join(spec.choices, ", "), v.text);
  }
  return v.text;
}
std::string Codec<std::string>::show(const std::string& v) {
  if (v.empty()) return "\"\"";
  YAML::Emitter out;
  out << v;
  return out.c_str();
}

std::vector<std::string> Codec<std::vector<std::string>>::parse(const OptionValue& v, const OptionSpec& spec,
                                                                const std::string& origin) {
  std::vector<std::string> items = v.is_list ? v.items : std::vector<std::string>{};
  if (!v.is_list) {  // --set key=x,y or --set key=[x, y]
    std::string_view text = v.text;
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
    std::stringstream in{std::string(text)};
    for (std::string item; std::getline(in, item, ',');) {
      const size_t first = item.find_first_not_of(' '), last = item.find_last_not_of(' ');
      if (first != std::string::npos) items.push_back(item.substr(first, last - first + 1));
    }
  }
  for (const std::string& item : items) {
    HEED_CHECK(spec.choices.empty() || std::find(spec.choices.begin(), spec.choices.end(), item) != spec.choices.end(),
               "{}: {} accepts {}, got '{}'", origin, spec.key, fmt::join(spec.choices, ", "), item);
  }
  return items;
}
std::string Codec<std::vector<std::string>>::show(const std::vector<std::string>& v) {
  std::vector<std::string> shown;
  for (const std::string& s : v) shown.push_back(Codec<std::string>::show(s));
  return fmt::format("[{}]", fmt::join(shown, ", "));
}

void load_file(const std::vector<OptionSpec>& specs, void* root, const std::string& path) {
  HEED_CHECK(!std::filesystem::is_directory(path), "config file {} is a directory, not a YAML file", path);
  HEED_CHECK(std::filesystem::is_regular_file(path), "config file {} does not exist", path);
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    HEED_CHECK(false, "{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.msg);
  }
  if (doc.IsNull()) return;  // an empty file keeps every default
  HEED_CHECK(doc.IsMap(), "{}: expected a mapping of config groups (model:, data:, ...)", path);
  std::vector<std::pair<std::string, YAML::Node>> leaves;
  flatten(doc, "", specs, path, leaves);
  for (const auto& [key, node] : leaves) {
    const std::string origin = fmt::format("{}:{}", path, node.Mark().line + 1);
    const OptionSpec& spec = find_spec(specs, key, origin);
    OptionValue value;
    if (node.IsSequence()) {
      value.is_list = true;
      for (const YAML::Node& item : node) {
        HEED_CHECK(item.IsScalar(), "{}: {} expects a list of values", origin, key);
        value.items.push_back(item.as<std::string>());
      }
    } else {
      HEED_CHECK(node.IsScalar() || node.IsNull(), "{}: {} expects a {}, got a mapping", origin, key, spec.type);
      value.text = node.IsNull() ? "" : node.as<std::string>();
    }
    spec.set(root, value, spec, origin);
  }
}

void set_assignment(const std::vector<OptionSpec>& specs, void* root, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  HEED_CHECK(eq != std::string::npos && eq > 0, "--set {}: expected key=value, e.g. --set optimizer.lr=3e-4",
             assignment);
  const std::string key = assignment.substr(0, eq), origin = fmt::format("--set {}", assignment);
  const OptionSpec& spec = find_spec(specs, key, origin);
  OptionValue value;
  value.text = assignment.substr(eq + 1);
  spec.set(root, value, spec, origin);
}

std::string dump_yaml(const std::vector<OptionSpec>& specs, const void* root, bool with_help) {
  std::string out, group;
  for (const OptionSpec& spec : specs) {
    const size_t dot = spec.key.find('.');
    const std::string this_group = dot == std::string::npos ? "" : spec.key.substr(0, dot);
    const std::string name = spec.key.substr(dot == std::string::npos ? 0 : dot + 1);
    if (this_group != group) {
      group = this_group;
      out += fmt::format("{}{}:\n", out.empty() ? "" : "\n", group);
    }
    const std::string indent = group.empty() ? "" : "  ";
    if (with_help) {
      std::string range;
      if (!spec.choices.empty()) range = fmt::format("; one of: {}", fmt::join(spec.choices, ", "));
      if (std::isfinite(spec.min)) range += fmt::format("; {} {}", spec.min_exclusive ? ">" : ">=", spec.min);
      if (std::isfinite(spec.max)) range += fmt::format("; <= {}", spec.max);
      out += fmt::format("{}# {} ({}{})\n", indent, spec.help, spec.type, range);
    }
    out += fmt::format("{}{}: {}\n", indent, name, spec.get(root));
  }
  return out;
}

}  // namespace heed::io::option_detail
