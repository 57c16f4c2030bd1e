// Writes the fuzz target's seed corpus: every message type as a whole frame, as a bare
// payload, as a stream of frames, and sealed for the channel mode (fuzz_common.hpp).
//   make_corpus DIR
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "protocol/channel.hpp"
#include "protocol/frame.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using namespace powergrad::proto;

namespace {

int written = 0;

bool put(const std::string &dir, const std::string &name, char mode, const std::string &body) {
  const std::string path = dir + "/" + name;
  FILE *f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    std::perror(path.c_str());
    return false;
  }
  const std::string bytes = std::string(1, mode) + body;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  std::fclose(f);
  written += ok;
  return ok;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  mkdir(dir.c_str(), 0755);
  SecureChannel client;
  if (!SecureChannel::create(pgfuzz::kFuzzSession, pgfuzz::fuzz_key(), Side::client, client).ok()) {
    std::fprintf(stderr, "make_corpus: channel setup failed\n");
    return 1;
  }
  std::string stream;
  int i = 0;
  for (const Message &m : pgfuzz::seed_messages()) {
    const std::string tag = std::to_string(i++) + "-" + type_name(type_of(m));
    std::string frame, payload, sealed;
    if (!encode_frame(m, 1, 0, nullptr, frame).ok() || !encode_payload(m, payload).ok() ||
        !client.seal(m, sealed).ok()) {
      std::fprintf(stderr, "make_corpus: %s does not encode\n", tag.c_str());
      return 1;
    }
    const char type_byte = static_cast<char>(static_cast<unsigned>(type_of(m)) - 1);
    if (!put(dir, "frame-" + tag, 0, frame) ||
        !put(dir, "payload-" + tag, 1, type_byte + payload) ||
        !put(dir, "sealed-" + tag, 3, sealed))
      return 1;
    stream += frame;
    // NODE_CAPS as an older agent sends it: without its trailing restore_failures.
    if (type_of(m) == MsgType::node_caps &&
        !put(dir, "payload-old-" + tag, 1, type_byte + payload.substr(0, payload.size() - 8)))
      return 1;
  }
  if (!put(dir, "stream-all", 2, std::string(1, '\x07') + stream)) return 1;
  std::printf("%d\n", written);
  return 0;
}
