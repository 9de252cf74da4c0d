// The error family of heed/core/error.h: HEED_CHECK and HEED_CHECK_CALL, the checker every library's
// status macro (CUDA, cuBLASLt, cuDNN, NCCL, MPI) is built on. Messages are for the user and name no
// source file; the location goes to where().
#include <catch2/catch.hpp>

#include <string>

#include "heed/core/error.h"

using namespace heed;

namespace {

// A stand-in for a C library that reports failures as status codes, as CUDA and MPI do.
enum FakeStatus { kFakeSuccess = 0, kFakeBusy = 7 };

const char* fake_status_text(FakeStatus status) { return status == kFakeBusy ? "device busy" : "no error"; }

FakeStatus fake_call(FakeStatus result, int* calls) {
  ++*calls;
  return result;
}

#define FAKE_CHECK(call) HEED_CHECK_CALL("Fake", #call, call, kFakeSuccess, fake_status_text)

// A macro inside the checked call, as MPI_COMM_WORLD is in MPI calls: the message shows it as written.
#define FAKE_BUSY kFakeBusy

Error caught(void (*fail)()) {
  try {
    fail();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no heed::Error thrown");
  return Error("", "");
}

}  // namespace

TEST_CASE("HEED_CHECK keeps the source location out of the message", "[core][error]") {
  const Error e = caught([] { HEED_CHECK(1 + 1 == 3, "expected {} to be {}", "two", 3); });
  CHECK(std::string(e.what()) == "expected two to be 3");
  CHECK(e.where().find("test_error.cc:") != std::string::npos);
}

TEST_CASE("HEED_CHECK_CALL names the library, the call and its reason, and runs the call once",
          "[core][error]") {
  int calls = 0;
  FAKE_CHECK(fake_call(kFakeSuccess, &calls));
  CHECK(calls == 1);

  static int failing_calls = 0;
  const Error e = caught([] { FAKE_CHECK(fake_call(FAKE_BUSY, &failing_calls)); });
  CHECK(failing_calls == 1);
  CHECK(std::string(e.what()) == "Fake call fake_call(FAKE_BUSY, &failing_calls) failed: device busy");
  // The location is where the check was written, kept apart from the message.
  CHECK(e.where().find("test_error.cc:") != std::string::npos);
  CHECK(std::string(e.what()).find("test_error.cc") == std::string::npos);
}
