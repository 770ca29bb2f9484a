# Every dependency comes from a Debian 12 package (DESIGN.md §10); nothing is downloaded.
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS url json)
find_package(OpenSSL REQUIRED)
find_package(simdjson CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)

add_library(orgpatch_deps_asio INTERFACE)
target_link_libraries(orgpatch_deps_asio INTERFACE Boost::headers OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
target_compile_definitions(orgpatch_deps_asio INTERFACE
  BOOST_ASIO_SEPARATE_COMPILATION BOOST_BEAST_SEPARATE_COMPILATION
  BOOST_ASIO_NO_DEPRECATED
  # Coroutine frames and handlers of the 32+ requests in flight are recycled
  # per thread instead of going back to malloc (Asio keeps 2 by default).
  BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=16)

add_library(orgpatch_deps INTERFACE)
target_link_libraries(orgpatch_deps INTERFACE
  Boost::url Boost::json simdjson::simdjson spdlog::spdlog fmt::fmt yaml-cpp)
