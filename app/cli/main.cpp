// qvg: the command-line tool. Each subcommand lives in its own file and registers itself here.
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
    CLI::App app{"qvg: world models with a 2-bit quantized KV cache"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "qvg 0.1.0");
    for (const auto& reg : qvg::cli::command_registry()) reg(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    try {
        return qvg::cli::run_selected(app);
    } catch (const std::exception& e) {
        std::cerr << "qvg: error: " << e.what() << "\n";
        return 1;
    }
}
