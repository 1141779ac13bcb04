#include <iostream>
#include <ATen/ATen.h>
#include "qvg/core/safetensors.h"
int main() { std::cout << at::ones({2}) << "\n"; }
