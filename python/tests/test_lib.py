"""The library layer: discovery (FUSEDOPT_LIB, build tree, install prefix, a clear error), the
ctypes struct layouts against the C header, pip install."""
import ctypes
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import fusedopt
from fusedopt import _lib as L

PY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # python/
ROOT = os.path.dirname(PY)


def run(code, env=None, python=sys.executable, cwd=None):
    e = dict(os.environ)
    e.pop("FUSEDOPT_LIB", None)
    e.update(env or {})
    r = subprocess.run([python, "-c", textwrap.dedent(code)], env=e, cwd=cwd or "/",
                       capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def test_lib_path_and_version():
    path = fusedopt.lib_path()
    assert os.path.isfile(path)
    if os.environ.get("FUSEDOPT_LIB"):
        assert path == os.environ["FUSEDOPT_LIB"]
    assert fusedopt.version() == "0.2.0"
    assert fusedopt.cpu_isa() in ("avx512", "avx2", "scalar")
    assert fusedopt.cpu_threads() >= 1


def test_build_tree_found_from_a_source_checkout():
    if not os.path.isfile(os.path.join(ROOT, "build", "libfusedopt.so")):
        pytest.skip("no build/libfusedopt.so")
    rc, out = run("import sys; sys.path.insert(0, %r); import fusedopt; print(fusedopt.lib_path())" % PY)
    assert rc == 0, out
    assert out.strip() == os.path.join(ROOT, "build", "libfusedopt.so")


def test_env_override_and_bad_path():
    lib = fusedopt.lib_path()
    rc, out = run("import sys; sys.path.insert(0, %r); import fusedopt; print(fusedopt.lib_path())" % PY,
                  env={"FUSEDOPT_LIB": lib})
    assert rc == 0 and out.strip() == lib, out
    rc, out = run("import sys; sys.path.insert(0, %r); import fusedopt; fusedopt.lib_path()" % PY,
                  env={"FUSEDOPT_LIB": "/nonexistent/libfusedopt.so"})
    assert rc != 0 and "FUSEDOPT_LIB=/nonexistent/libfusedopt.so does not exist" in out
    rc, out = run("import sys; sys.path.insert(0, %r); import fusedopt; fusedopt.lib_path()" % PY,
                  env={"FUSEDOPT_LIB": "/etc/hostname"})
    assert rc != 0 and "cannot load /etc/hostname" in out


def copy_package(dst):
    shutil.copytree(os.path.join(PY, "fusedopt"), os.path.join(dst, "fusedopt"),
                    ignore=shutil.ignore_patterns("__pycache__"))


def test_not_found_lists_where_it_looked(tmp_path):
    copy_package(str(tmp_path))   # outside the source tree: no build tree to find
    rc, out = run("""
        import sys; sys.path.insert(0, %r)
        import fusedopt
        try:
            print("FOUND", fusedopt.lib_path())
        except fusedopt.FusedOptError as e:
            print(e)
        """ % str(tmp_path))
    if "FOUND" in out:
        pytest.skip("a libfusedopt is installed system-wide here: %s" % out.strip())
    assert "libfusedopt not found" in out and "Set FUSEDOPT_LIB" in out
    assert os.path.join(sys.prefix, "lib", "libfusedopt.so") in out
    assert "find_library" in out


def test_install_prefix_found(tmp_path):
    """A venv whose lib/ holds libfusedopt (as `cmake --install build --prefix VENV` puts it)."""
    venv = tmp_path / "venv"
    r = subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                        str(venv)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot create a venv: %s" % r.stderr.strip()[-200:])
    py = str(venv / "bin" / "python")
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True).stdout.strip()
    copy_package(site)
    os.makedirs(venv / "lib", exist_ok=True)
    shutil.copy(os.path.realpath(fusedopt.lib_path()), venv / "lib" / "libfusedopt.so.0")
    rc, out = run("import fusedopt; print(fusedopt.lib_path())", python=py)
    assert rc == 0, out
    assert out.strip().endswith(os.path.join("venv", "lib", "libfusedopt.so.0")), out


def test_bundled_library_found_and_python_m_fusedopt(tmp_path):
    """An installed package (outside the source tree) with the library pip bundles in it
    (fusedopt/libfusedopt.so) loads that one, and `python -m fusedopt` says so; without it,
    `python -m fusedopt` exits 1 with the search's message. scripts/pip_check.sh runs the real
    `pip install ./python`."""
    copy_package(str(tmp_path))
    rc, out = run("import sys; sys.path.insert(0, %r); import runpy; "
                  "runpy.run_module('fusedopt', run_name='__main__')" % str(tmp_path))
    if rc == 0:
        pytest.skip("a libfusedopt is installed system-wide here: %s" % out.strip())
    assert rc == 1 and "libfusedopt: not loaded: fusedopt: libfusedopt not found" in out, out
    bundled = tmp_path / "fusedopt" / "libfusedopt.so"
    shutil.copy(os.path.realpath(fusedopt.lib_path()), bundled)
    rc, out = run("import sys; sys.path.insert(0, %r); import runpy; "
                  "runpy.run_module('fusedopt', run_name='__main__')" % str(tmp_path))
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("fusedopt %s " % fusedopt.__version__), out
    assert lines[1] == "libfusedopt %s at %s" % (fusedopt.version(), bundled), out
    assert lines[2] == "CPU: %s, %d threads" % (fusedopt.cpu_isa(), fusedopt.cpu_threads()), out
    assert lines[3].startswith("CUDA: "), out
    if L.library().emulated:
        assert "emulated device" in lines[3]


def c_layout():
    cc = shutil.which("cc") or shutil.which("gcc")
    cuda = None
    for d in (os.environ.get("CUDA_HOME"), "/usr/local/cuda", "/usr"):
        if d and os.path.isfile(os.path.join(d, "include", "cuda_runtime_api.h")):
            cuda = os.path.join(d, "include")
            break
    if not cc or not cuda or not os.path.isfile(os.path.join(ROOT, "include", "fusedopt.h")):
        pytest.skip("no C compiler, CUDA headers or source tree")
    return cc, cuda


FIELDS = {
    "fopt_precision": (L.Precision, ["state_dtype", "master_weights", "stochastic_rounding",
                                     "master_remainder", "seed"]),
    "fopt_adam_config": (L.AdamConfig, ["lr", "beta1", "beta2", "eps", "weight_decay",
                                        "decoupled_weight_decay", "amsgrad", "maximize",
                                        "precision", "capturable"]),
    "fopt_rmsprop_config": (L.RmspropConfig, ["lr", "alpha", "eps", "weight_decay", "momentum",
                                              "centered", "maximize", "precision", "capturable"]),
    "fopt_step_options": (L.StepOptions, ["grad_scale", "max_grad_norm", "grad_norm", "found_inf",
                                          "zero_grads", "grad_sq_sum"]),
    "fopt_host_tensor": (L.HostTensor, ["param", "grad", "numel", "dtype", "master", "state"]),
    "fopt_tensor": (L.Tensor, ["param", "grad", "numel", "dtype", "group"]),
}


def test_struct_layouts_match_the_header(tmp_path):
    cc, cuda = c_layout()
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <fusedopt.h>", "int main(void) {"]
    for cname, (_, fields) in FIELDS.items():
        lines.append('printf("%s sizeof %%zu\\n", sizeof(%s));' % (cname, cname))
        for f in fields:
            lines.append('printf("%s %s %%zu\\n", offsetof(%s, %s));' % (cname, f, cname, f))
    lines += ['printf("enum %d %d %d %d %d %d\\n", FOPT_FLOAT32, FOPT_FLOAT16, FOPT_BFLOAT16, '
              'FOPT_SLOT_MASTER, FOPT_SLOT_GRAD_AVG, FOPT_MAX_GROUPS);', "return 0; }"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    r = subprocess.run([cc, "-std=c11", "-I", os.path.join(ROOT, "include"), "-I", cuda, str(src),
                        "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True).stdout.splitlines()
    c = {}
    for line in out:
        parts = line.split()
        c[tuple(parts[:-1])] = parts[-1]
    for cname, (cls, fields) in FIELDS.items():
        assert int(c[(cname, "sizeof")]) == ctypes.sizeof(cls), cname
        for f in fields:
            assert int(c[(cname, f)]) == getattr(cls, f).offset, (cname, f)
    enum = [l for l in out if l.startswith("enum")][0].split()[1:]
    assert [int(x) for x in enum] == [L.FLOAT32, L.FLOAT16, L.BFLOAT16, L.SLOT_MASTER,
                                      L.SLOT_GRAD_AVG, L.MAX_GROUPS]


def test_library_errors_are_fusedopterror():
    lib = L.library()
    cfg = lib.adam_config()
    cfg.lr = -1.0
    with pytest.raises(fusedopt.FusedOptError) as e:
        lib.call("fopt_adam_step_cpu_multi", ctypes.byref(cfg), 1, None, 0, None)
    assert e.value.status_name == "FOPT_ERROR_INVALID_VALUE" and "lr" in e.value.detail
