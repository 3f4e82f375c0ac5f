#include "graph/device_name.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace sluice {
namespace {

bool IsIdentifier(absl::string_view s) {
  if (s.empty() || !absl::ascii_isalpha(s[0])) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

// Non-negative decimal without sign or spaces.
bool ParseIndex(absl::string_view s, int* out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return absl::SimpleAtoi(s, out);
}

template <typename T>
absl::Status CheckUnset(const std::optional<T>& field, absl::string_view what) {
  if (field.has_value())
    return absl::InvalidArgumentError(absl::StrCat("names the ", what, " twice"));
  return absl::OkStatus();
}

// Parses "TYPE:ID" (ID may be "*") into the type and id of `name`.
absl::Status ParseTypeAndId(absl::string_view type, absl::string_view id, DeviceName* name) {
  if (!IsIdentifier(type)) {
    return absl::InvalidArgumentError(absl::StrCat("bad device type '", type, "'"));
  }
  if (name->type.has_value()) {
    return absl::InvalidArgumentError("names the device twice");
  }
  name->type = absl::AsciiStrToLower(type);
  if (id == "*") return absl::OkStatus();
  int value;
  if (!ParseIndex(id, &value)) {
    return absl::InvalidArgumentError(absl::StrCat("bad device id '", id, "'"));
  }
  name->id = value;
  return absl::OkStatus();
}

absl::Status ParseComponent(absl::string_view part, DeviceName* name) {
  std::vector<absl::string_view> f = absl::StrSplit(part, ':');
  if (f.size() == 2 && f[0] == "job") {
    if (name->job.has_value()) return CheckUnset(name->job, "job");
    if (!IsIdentifier(f[1])) {
      return absl::InvalidArgumentError(absl::StrCat("bad job name '", f[1], "'"));
    }
    name->job = std::string(f[1]);
    return absl::OkStatus();
  }
  if (f.size() == 2 && (f[0] == "task" || f[0] == "replica")) {
    std::optional<int>& field = f[0] == "task" ? name->task : name->replica;
    if (field.has_value()) return CheckUnset(field, f[0]);
    int value;
    if (!ParseIndex(f[1], &value)) {
      return absl::InvalidArgumentError(absl::StrCat("bad ", f[0], " index '", f[1], "'"));
    }
    field = value;
    return absl::OkStatus();
  }
  if (f.size() == 3 && f[0] == "device") return ParseTypeAndId(f[1], f[2], name);
  if (f.size() == 2 && f[0] != "device") return ParseTypeAndId(f[0], f[1], name);  // "/cpu:0"
  return absl::InvalidArgumentError(
      absl::StrCat("unknown component '", part,
                   "' (expected job:NAME, replica:N, task:N, device:TYPE:ID or TYPE:ID)"));
}

}  // namespace

absl::StatusOr<DeviceName> DeviceName::Parse(absl::string_view text) {
  DeviceName name;
  if (text.empty()) return name;
  auto fail = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid device name '", text, "': ", why));
  };
  if (text[0] != '/') return fail("must start with '/'");
  std::vector<absl::string_view> parts = absl::StrSplit(text.substr(1), '/');
  for (absl::string_view part : parts) {
    if (part.empty()) return fail("empty component");
    absl::Status s = ParseComponent(part, &name);
    if (!s.ok()) return fail(s.message());
  }
  return name;
}

std::string DeviceName::ToString() const {
  std::string out;
  if (job) absl::StrAppend(&out, "/job:", *job);
  if (replica) absl::StrAppend(&out, "/replica:", *replica);
  if (task) absl::StrAppend(&out, "/task:", *task);
  if (type) absl::StrAppend(&out, "/device:", *type, ":", id ? absl::StrCat(*id) : "*");
  if (!type && id) absl::StrAppend(&out, "/device:*:", *id);  // Only reachable by hand.
  return out;
}

std::string DeviceName::TaskPrefix(absl::string_view job, int task) {
  return DeviceName{std::string(job), std::nullopt, task, std::nullopt, std::nullopt}.ToString();
}

std::string DeviceName::TaskCpuDevice(absl::string_view task_prefix) {
  return absl::StrCat(task_prefix, "/device:cpu:0");
}

bool DeviceName::IsFullySpecified() const { return job && task && type && id; }

bool DeviceName::Matches(const DeviceName& device) const {
  if (job && job != device.job) return false;
  if (replica && replica != device.replica && !(*replica == 0 && !device.replica)) return false;
  if (task && task != device.task) return false;
  if (type && type != device.type) return false;
  if (id && id != device.id) return false;
  return true;
}

bool DeviceName::IsCompatibleWith(const DeviceName& other) const {
  auto agree = [](const auto& a, const auto& b) { return !a || !b || *a == *b; };
  return agree(job, other.job) && agree(replica, other.replica) && agree(task, other.task) &&
         agree(type, other.type) && agree(id, other.id);
}

absl::Status DeviceName::MergeFrom(const DeviceName& other) {
  auto merge = [](auto& mine, const auto& theirs, absl::string_view what) -> absl::Status {
    if (!theirs) return absl::OkStatus();
    if (mine && *mine != *theirs) {
      return absl::InvalidArgumentError(
          absl::StrCat("conflicting ", what, ": ", *mine, " vs ", *theirs));
    }
    mine = theirs;
    return absl::OkStatus();
  };
  DeviceName merged = *this;
  absl::Status s = merge(merged.job, other.job, "job");
  if (s.ok()) s = merge(merged.replica, other.replica, "replica");
  if (s.ok()) s = merge(merged.task, other.task, "task");
  if (s.ok()) s = merge(merged.type, other.type, "device type");
  if (s.ok()) s = merge(merged.id, other.id, "device id");
  if (!s.ok()) return s;
  *this = std::move(merged);
  return absl::OkStatus();
}

absl::StatusOr<std::string> CanonicalDeviceName(absl::string_view text) {
  absl::StatusOr<DeviceName> name = DeviceName::Parse(text);
  if (!name.ok()) return name.status();
  return name->ToString();
}

}  // namespace sluice
