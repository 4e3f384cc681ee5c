"""Test setup: the package from this source tree (python/) comes first on sys.path, so the tests
exercise the checkout's code whether or not fusedopt is pip-installed. libfusedopt is found as
the package finds it (FUSEDOPT_LIB, else build/libfusedopt.so of the checkout, else installed)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def emu_lib():
    from emu_device import find_emulated_library
    lib = find_emulated_library()
    if lib is None:
        pytest.skip("no emulated libfusedopt (build it: cmake -S . -B build-emu "
                    "-DFOPT_DEVICE_EMULATION=ON -DFOPT_BUILD_TESTS=OFF -DFOPT_BUILD_BENCH=OFF && "
                    "cmake --build build-emu --target fusedopt; or set FUSEDOPT_EMU_LIB)")
    return lib


@pytest.fixture
def emu(emu_lib):
    from emu_device import EmuDevice
    dev = EmuDevice(emu_lib)
    yield dev
    dev.close()
