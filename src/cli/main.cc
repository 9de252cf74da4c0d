#include <spdlog/spdlog.h>

int main(int argc, char** argv) {
  spdlog::info("heed");
  return 0;
}
