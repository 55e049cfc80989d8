#include "policy.h"

#include <linux/capability.h>

#include <stdint.h>

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "reuseport/protocol.h"
#include "user_database.h"

namespace reuseport::broker {

namespace {

absl::Status LineError(const std::string& origin, int line, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrFormat("%s:%d: %s", origin, line, what));
}

// A number, or a name from /etc/passwd or /etc/group (user_database.h: not
// NSS, which a static broker cannot use). The error is the line's message.
absl::Status ParseId(absl::string_view value, bool is_uid, uint32_t* out) {
  if (absl::SimpleAtoi(value, out)) return absl::OkStatus();
  absl::StatusOr<uint32_t> id = is_uid ? FindUserId(value) : FindGroupId(value);
  if (absl::IsNotFound(id.status())) {
    return absl::NotFoundError(absl::StrFormat("no such %s '%s'", is_uid ? "user" : "group", value));
  }
  if (!id.ok()) return id.status();
  *out = *id;
  return absl::OkStatus();
}

// "80", "80,443" (one rule each) or "8000-8100".
bool ParsePorts(absl::string_view value, std::vector<std::pair<uint16_t, uint16_t>>* out) {
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    std::vector<absl::string_view> ends = absl::StrSplit(item, absl::MaxSplits('-', 1));
    int lo = 0, hi = 0;
    if (!absl::SimpleAtoi(ends[0], &lo)) return false;
    hi = lo;
    if (ends.size() == 2 && !absl::SimpleAtoi(ends[1], &hi)) return false;
    if (lo < 1 || hi > 65535 || lo > hi) return false;
    out->push_back({static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)});
  }
  return !out->empty();
}

}  // namespace

absl::StatusOr<Policy> Policy::Parse(const std::string& text, const std::string& origin) {
  Policy p;
  std::istringstream in(text);
  std::string raw;
  int n = 0;
  while (std::getline(in, raw)) {
    ++n;
    absl::string_view line = raw;
    line = line.substr(0, line.find('#'));
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<absl::string_view> words = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    absl::string_view verb = words[0];
    absl::flat_hash_map<std::string, std::string> fields;
    for (size_t i = 1; i < words.size(); ++i) {
      std::vector<absl::string_view> kv = absl::StrSplit(words[i], absl::MaxSplits('=', 1));
      if (kv.size() != 2 || kv[1].empty()) return LineError(origin, n, absl::StrFormat("'%s' is not key=value", words[i]));
      if (!fields.emplace(std::string(kv[0]), std::string(kv[1])).second) {
        return LineError(origin, n, absl::StrFormat("'%s' given twice", kv[0]));
      }
    }
    if (verb == "allow") {
      bool has_uid = fields.contains("uid"), has_gid = fields.contains("gid");
      if (has_uid == has_gid) return LineError(origin, n, "allow needs exactly one of uid= or gid=");
      if (!fields.contains("port")) return LineError(origin, n, "allow needs port=");
      AllowRule base;
      base.by_uid = has_uid;
      base.line = n;
      const std::string& who = has_uid ? fields["uid"] : fields["gid"];
      if (absl::Status id = ParseId(who, has_uid, &base.id); !id.ok()) {
        return LineError(origin, n, std::string(id.message()));
      }
      if (fields.contains("protocol")) {
        const std::string& proto = fields["protocol"];
        if (proto == "tcp") base.protocol = RP_PROTO_TCP;
        else if (proto == "udp") base.protocol = RP_PROTO_UDP;
        else if (proto != "both") return LineError(origin, n, absl::StrFormat("protocol '%s' is not tcp, udp or both", proto));
      }
      std::vector<std::pair<uint16_t, uint16_t>> ranges;
      if (!ParsePorts(fields["port"], &ranges)) {
        return LineError(origin, n, absl::StrFormat("port '%s' is not PORT, PORT,PORT or FIRST-LAST in 1-65535", fields["port"]));
      }
      for (auto [lo, hi] : ranges) {
        AllowRule r = base;
        r.first_port = lo;
        r.last_port = hi;
        p.rules_.push_back(r);
      }
      for (const auto& [key, value] : fields) {
        if (key != "uid" && key != "gid" && key != "port" && key != "protocol") {
          return LineError(origin, n, absl::StrFormat("allow does not take '%s'", key));
        }
      }
    } else if (verb == "limit") {
      UidLimits* target = &p.defaults_;
      UidLimits copy;
      bool one_uid = fields.contains("uid");
      uint32_t uid = 0;
      if (one_uid) {
        if (absl::Status id = ParseId(fields["uid"], true, &uid); !id.ok()) {
          return LineError(origin, n, std::string(id.message()));
        }
        copy = p.per_uid_.contains(uid) ? p.per_uid_[uid] : p.defaults_;
        target = &copy;
      }
      if (fields.size() == (one_uid ? 1u : 0u)) {
        return LineError(origin, n, "limit needs groups=, members=, links=, queued=, udp_bytes= or reply_bytes=");
      }
      for (const auto& [key, value] : fields) {
        if (key == "uid") continue;
        int64_t v = 0;
        bool is_bytes = key == "udp_bytes" || key == "reply_bytes";
        if (!absl::SimpleAtoi(value, &v) || v < 0 || (!is_bytes && v > INT32_MAX)) {
          return LineError(origin, n, absl::StrFormat("%s='%s' is not a %s", key, value, is_bytes ? "byte count" : "count"));
        }
        if (key == "groups") target->groups = static_cast<int>(v);
        else if (key == "members") target->members = static_cast<int>(v);
        else if (key == "links") target->links = static_cast<int>(v);
        else if (key == "queued") target->queued = static_cast<int>(v);
        else if (key == "udp_bytes") target->udp_bytes = v;
        else if (key == "reply_bytes") target->reply_bytes = v;
        else return LineError(origin, n, absl::StrFormat("limit does not take '%s'", key));
      }
      if (one_uid) p.per_uid_[uid] = copy;
    } else {
      return LineError(origin, n, absl::StrFormat("unknown rule '%s' (expected allow or limit)", verb));
    }
  }
  return p;
}

absl::StatusOr<Policy> Policy::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrFormat("cannot read policy file %s", path));
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

bool Policy::AllowedByRule(const PeerIdentity& peer, int protocol, uint16_t port) const {
  for (const AllowRule& r : rules_) {
    if (port < r.first_port || port > r.last_port) continue;
    if (r.protocol != 0 && r.protocol != protocol) continue;
    if (r.by_uid ? peer.creds.uid == r.id : peer.InGroup(r.id)) return true;
  }
  return false;
}

bool Policy::MayJoinPort(const PeerIdentity& peer, int protocol, uint16_t port) const {
  if (port >= kFirstUnprivilegedPort) return true;
  return AllowedByRule(peer, protocol, port) || peer.may_bind_privileged;
}

UidLimits Policy::LimitsFor(uid_t uid) const {
  auto it = per_uid_.find(uid);
  return it == per_uid_.end() ? defaults_ : it->second;
}

namespace {

std::string DescribeLimits(const UidLimits& l) {
  return absl::StrFormat("groups=%d members=%d links=%d queued=%d udp_bytes=%d reply_bytes=%d", l.groups, l.members,
                         l.links, l.queued, l.udp_bytes, l.reply_bytes);
}

}  // namespace

std::string Policy::Describe() const {
  std::string out = absl::StrFormat("%d allow rule(s); default limits: %s", rules_.size(), DescribeLimits(defaults_));
  for (const auto& [uid, l] : per_uid_) absl::StrAppendFormat(&out, "; uid %d: %s", uid, DescribeLimits(l));
  return out;
}

}  // namespace reuseport::broker
