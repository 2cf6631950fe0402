// cxxplug — a C++ plugin whose constructor ends in a call to the C++
// runtime: built -O2, the call is a jump, so the constructor leaves no
// frame of its own under what the runtime allocates there (a string's
// buffer of 1001 bytes). The string and its buffer are the plugin's, kept
// through a global: the program's own, still reachable. Built twice, the
// second (cxxplug2) with a buffer of 1501 bytes.
#include <string>

#ifndef CXXPLUG_RESERVE
#define CXXPLUG_RESERVE 1000
#endif

std::string *cxxplug_kept;

__attribute__((constructor)) static void cxxplug_init()
{
    cxxplug_kept = new std::string;
    cxxplug_kept->reserve(CXXPLUG_RESERVE);
}
