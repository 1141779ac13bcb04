#pragma once
// Subcommand registry of the qvg tool. A command file defines a static Registrar that adds its
// CLI::App subcommand and the function to run when it is selected.

#include <functional>
#include <vector>

#include <CLI/CLI.hpp>

namespace qvg::cli {

using Register = std::function<void(CLI::App&)>;

std::vector<Register>& command_registry();

// Remembers which function runs for which subcommand (called from a Register).
void on_selected(CLI::App* sub, std::function<int()> run);

// Runs the function of the parsed subcommand; returns its exit code.
int run_selected(CLI::App& app);

struct Registrar {
    explicit Registrar(Register reg) { command_registry().push_back(std::move(reg)); }
};

}  // namespace qvg::cli
