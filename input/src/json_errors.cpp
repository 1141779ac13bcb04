#include "json_errors.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <system_error>

namespace qvg::input::detail {

std::string describe(const nlohmann::json& j) {
    std::string text = j.dump();
    constexpr std::size_t kMax = 60;
    if (text.size() > kMax) text = text.substr(0, kMax) + "...";
    return std::string(j.type_name()) + " " + text;
}

nlohmann::json JsonReader::parse(std::string_view text) const {
    try {
        return nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::parse_error& e) {
        throw InputFileError(source_ + ": not valid JSON (" + e.what() + ")");
    }
}

nlohmann::json JsonReader::parse_file(const std::filesystem::path& path) const {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputFileError(source_ + ": cannot open the file for reading");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw InputFileError(source_ + ": read error");
    return parse(text.str());
}

void JsonReader::fail(std::string_view where, std::string_view message) const {
    throw InputFileError(source_ + ": " + std::string(where) + ": " + std::string(message));
}

const nlohmann::json& JsonReader::object(const nlohmann::json& j, std::string_view where) const {
    if (!j.is_object()) fail(where, "expected an object, found " + describe(j));
    return j;
}

const nlohmann::json& JsonReader::array(const nlohmann::json& j, std::string_view where) const {
    if (!j.is_array()) fail(where, "expected an array, found " + describe(j));
    return j;
}

const nlohmann::json& JsonReader::member(const nlohmann::json& obj, std::string_view where,
                                         const char* key) const {
    object(obj, where);
    const auto it = obj.find(key);
    if (it == obj.end()) fail(where, std::string("missing required member \"") + key + "\"");
    return *it;
}

void JsonReader::only_members(const nlohmann::json& obj, std::string_view where,
                              std::initializer_list<std::string_view> allowed) const {
    object(obj, where);
    for (const auto& [key, value] : obj.items()) {
        bool known = false;
        for (std::string_view a : allowed) known = known || key == a;
        if (!known) {
            std::string list;
            for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
            fail(where, "unknown member \"" + key + "\" (expected one of: " + list + ")");
        }
    }
}

double JsonReader::number(const nlohmann::json& j, std::string_view where) const {
    if (!j.is_number()) fail(where, "expected a number, found " + describe(j));
    const double v = j.get<double>();
    if (!std::isfinite(v)) fail(where, "expected a finite number, found " + describe(j));
    return v;
}

std::int64_t JsonReader::integer(const nlohmann::json& j, std::string_view where, std::int64_t lo,
                                 std::int64_t hi) const {
    const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
    if (!j.is_number_integer())
        fail(where, "expected an integer in " + range + ", found " + describe(j));
    if (j.is_number_unsigned() && j.get<std::uint64_t>() > static_cast<std::uint64_t>(hi)) {
        fail(where, "expected an integer in " + range + ", found " + describe(j));
    }
    const std::int64_t v = j.get<std::int64_t>();
    if (v < lo || v > hi) fail(where, "expected an integer in " + range + ", found " + describe(j));
    return v;
}

std::uint64_t JsonReader::unsigned_integer(const nlohmann::json& j, std::string_view where) const {
    if (!j.is_number_unsigned()) {
        fail(where, "expected a non-negative integer, found " + describe(j));
    }
    return j.get<std::uint64_t>();
}

bool JsonReader::boolean(const nlohmann::json& j, std::string_view where) const {
    if (!j.is_boolean()) fail(where, "expected true or false, found " + describe(j));
    return j.get<bool>();
}

std::string JsonReader::string(const nlohmann::json& j, std::string_view where) const {
    if (!j.is_string()) fail(where, "expected a string, found " + describe(j));
    return j.get<std::string>();
}

void JsonReader::header(const nlohmann::json& root, std::string_view format, int version) const {
    object(root, "(root)");
    const std::string found = string(member(root, "(root)", "format"), "format");
    if (found != format) {
        fail("format", "expected \"" + std::string(format) + "\", found \"" + found + "\"");
    }
    integer(member(root, "(root)", "version"), "version", version, version);
}

void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw InputFileError(path.string() + ": cannot open for writing");
        out << text;
        out.flush();
        if (!out) throw InputFileError(path.string() + ": write error");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        const std::string reason = ec.message();
        std::filesystem::remove(tmp, ec);
        throw InputFileError(path.string() + ": cannot replace the file (" + reason + ")");
    }
}

}  // namespace qvg::input::detail
