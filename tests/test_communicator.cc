// The single-process communicator (world size 1, no MPI at run time) and the string gather built on the
// collectives. The MPI communicator is exercised under mpirun by tests/python/test_data_parallel.py.
#include <catch2/catch.hpp>

#include "heed/dist/communicator.h"

using namespace heed;

TEST_CASE("communicator: one process without a launcher", "[dist]") {
  const std::unique_ptr<dist::Communicator> comm = dist::make_communicator();
  REQUIRE(comm->world() == 1);
  REQUIRE(comm->rank() == 0);
  Tensor t = Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2});
  comm->all_reduce(t, dist::ReduceOp::Average);
  CHECK(t.to_vector<float>() == std::vector<float>{1, 2, 3, 4});
  std::vector<double> values{2.5, -1};
  comm->all_reduce(values, dist::ReduceOp::Sum);
  CHECK(values == std::vector<double>{2.5, -1});
  const Tensor gathered = comm->all_gather(t);
  CHECK(gathered.shape() == Shape{1, 2, 2});
  CHECK(gathered.to_vector<float>() == t.to_vector<float>());
  const Tensor scattered = comm->reduce_scatter(t, dist::ReduceOp::Sum);
  CHECK(scattered.shape() == Shape{2, 2});
  t.fill_(9.0f);  // results own their memory
  CHECK(gathered.to_vector<float>() == std::vector<float>{1, 2, 3, 4});
  CHECK(scattered.to_vector<float>() == std::vector<float>{1, 2, 3, 4});
  comm->barrier();
}

TEST_CASE("communicator: strings survive the gather, empty ones and unicode included", "[dist]") {
  const std::unique_ptr<dist::Communicator> comm = dist::make_communicator();
  const std::vector<std::string> mine{"¿Dónde está?", "", "a\nb", std::string(300, 'x')};
  const auto all = dist::all_gather_strings(*comm, mine);
  REQUIRE(all.size() == 1);
  CHECK(all[0] == mine);
  CHECK(dist::all_gather_strings(*comm, {}) == std::vector<std::vector<std::string>>{{}});
}
