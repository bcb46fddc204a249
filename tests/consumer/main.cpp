// A consumer that includes cadre and links against all of its usage requirements.
#include <cadre/cadre.hpp>

int main() { return CADRE_VERSION_MAJOR >= 0 ? 0 : 1; }
