// tests/main.cpp — the test binary is also the engine binary: embedded clusters re-execute it.
#include <cadre/cadre.hpp>

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  cadre::init(argc, argv);  // engine processes serve here and exit
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
