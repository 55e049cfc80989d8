// The channel proof against real socket pairs: only the true member end of a
// channel passes, whatever its inode number, and the proof leaves nothing
// behind in either direction.
#include "channel_proof.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "unique_fd.h"

namespace reuseport::broker {
namespace {

struct Channel {
  UniqueFd broker_end;
  UniqueFd member_end;
};

Channel MakeChannel(int type = SOCK_SEQPACKET) {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
  return Channel{UniqueFd(sv[0]), UniqueFd(sv[1])};
}

bool Readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}

TEST(ChannelProofTest, OnlyTheMemberEndOfTheSameChannelProvesIt) {
  Channel victim = MakeChannel();
  Channel attacker = MakeChannel();
  EXPECT_TRUE(ProvesChannel(victim.member_end.get(), victim.broker_end.get()));
  EXPECT_FALSE(ProvesChannel(attacker.member_end.get(), victim.broker_end.get()))
      << "a socket of one's own, whatever its inode number, is not the victim's channel";
  EXPECT_TRUE(Readable(attacker.broker_end.get())) << "the nonce went to the attacker's own peer, nowhere else";
  EXPECT_FALSE(ProvesChannel(victim.broker_end.get(), victim.broker_end.get()));
  Channel stream = MakeChannel(SOCK_STREAM);
  EXPECT_FALSE(ProvesChannel(stream.member_end.get(), stream.broker_end.get())) << "channels are SOCK_SEQPACKET";
  EXPECT_FALSE(IsChannelSocket(stream.member_end.get()));
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  EXPECT_FALSE(ProvesChannel(w.get(), victim.broker_end.get()));
}

TEST(ChannelProofTest, LeavesNothingInTheChannelAndIgnoresJunk) {
  Channel c = MakeChannel();
  // A misbehaving holder wrote into the broker's direction first.
  ASSERT_EQ(send(c.member_end.get(), "junk", 4, 0), 4);
  EXPECT_TRUE(ProvesChannel(c.member_end.get(), c.broker_end.get()));
  EXPECT_FALSE(Readable(c.broker_end.get())) << "the proof drains what it read";
  EXPECT_FALSE(Readable(c.member_end.get())) << "nothing reaches the program's side";
  EXPECT_TRUE(ProvesChannel(c.member_end.get(), c.broker_end.get())) << "and it can be proven again";
}

}  // namespace
}  // namespace reuseport::broker
