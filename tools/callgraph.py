#!/usr/bin/python3
"""callgraph.py — the include graph and the cross-file call graph of lib/src,
and the cycles in them.

The include graph comes from the source text: every #include "x.h" of a file
in lib/src that names a header of lib/src or lib/include/retriever.

The call graph comes from the compiled objects, which is exact where the text
is not (macros, static inlines, calls through a header): for each object
file, `nm` lists the symbols it defines and the ones it leaves undefined; a
file that leaves undefined a symbol another file defines depends on it.
Function pointers are no edge: a call through an ops table (source.h) or a
sink interface is the dependency inversion that breaks a loop.

Usage:
  tools/callgraph.py [--lib PATH] [--dot] [--check]
    --lib PATH     the built library, libretriever.a (default
                   build/lib/libretriever.a), or a directory of its objects
    --dot          print the call graph as Graphviz dot instead of a list
    --check        exit 1 when either graph has a cycle (the ctest)
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def include_graph(src, inc):
    """file -> set of files it includes (only the project's own headers)."""
    graph = {}
    own = {}
    for d in (src, inc):
        for name in os.listdir(d):
            if name.endswith(('.c', '.h')):
                own.setdefault(name, os.path.join(d, name))
    for name, path in own.items():
        edges = set()
        with open(path, encoding='utf-8') as f:
            for line in f:
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if m:
                    target = os.path.basename(m.group(1))
                    if target in own and target != name:
                        edges.add(target)
        graph[name] = edges
    return graph


def nm_lines(args):
    return subprocess.run(['nm'] + args, check=True, capture_output=True,
                          text=True).stdout.splitlines()


def call_graph(lib):
    """module (the .c file) -> {module: [symbols it uses from there]}.
    lib: the static library (each member an object file) or a directory of
    object files."""
    if os.path.isdir(lib):
        paths = sorted(os.path.join(lib, n) for n in os.listdir(lib) if n.endswith('.o'))
    else:
        paths = [lib]
    if not paths or not all(os.path.exists(p) for p in paths):
        sys.exit(f'callgraph: no object files at {lib} (build first)')
    uses, owner = {}, {}
    # -A names the file (and, in an archive, the member) on every line:
    # "lib.a:engine.c.o:0000000000000010 T rv_engine_add", "...:  U free".
    for line in nm_lines(['-A', '-g', '--defined-only'] + paths):
        where, _, rest = line.rpartition(':')
        if len(rest.split()) >= 3:
            mod = module(where)
            uses.setdefault(mod, set())
            owner[rest.split()[-1]] = mod
    for line in nm_lines(['-A', '-u'] + paths):
        where, _, rest = line.rpartition(':')
        if rest.split():
            uses.setdefault(module(where), set()).add(rest.split()[-1])
    graph = {}
    for mod, undef in uses.items():
        edges = {}
        for s in sorted(undef):
            o = owner.get(s)
            if o and o != mod:
                edges.setdefault(o, []).append(s)
        graph[mod] = edges
    return graph


def module(where):
    """engine.c for "lib.a:engine.c.o" or ".../engine.c.o"."""
    name = os.path.basename(where.split(':')[-1])
    return name[:-2] if name.endswith('.o') else name


def cycles(graph):
    """The strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        # Iterative: the graphs are small, but recursion depth is no
        # property a checker should depend on.
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layers(graph):
    """Each module's height: 0 for one that depends on no other module of
    the graph, else one more than the highest it depends on (acyclic only)."""
    height = {}

    def h(v, seen=()):
        if v in height:
            return height[v]
        if v in seen:
            return 0
        deps = [d for d in graph.get(v, ()) if d in graph]
        height[v] = 1 + max((h(d, seen + (v,)) for d in deps), default=-1)
        return height[v]

    for v in graph:
        h(v)
    return height


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--lib', default=os.path.join(ROOT, 'build/lib/libretriever.a'))
    ap.add_argument('--src', default=os.path.join(ROOT, 'lib/src'))
    ap.add_argument('--include', default=os.path.join(ROOT, 'lib/include/retriever'))
    ap.add_argument('--dot', action='store_true')
    ap.add_argument('--check', action='store_true')
    a = ap.parse_args()

    inc = include_graph(a.src, a.include)
    calls = call_graph(a.lib)
    if a.dot:
        print('digraph lib_src {\n  rankdir=TB;')
        for m in sorted(calls):
            for d in sorted(calls[m]):
                print(f'  "{m}" -> "{d}";')
        print('}')
    else:
        print('# call graph of lib/src (from nm): module -> modules whose symbols it uses,')
        print('# by layer (a module only calls into lower layers when there is no cycle)')
        cg = {m: set(e) for m, e in calls.items()}
        height = layers(cg)
        for m in sorted(calls, key=lambda m: (-height[m], m)):
            deps = ', '.join(sorted(calls[m])) or '-'
            print(f'  [{height[m]:2}] {m:14} -> {deps}')
    bad = False
    for name, g in (('include', inc), ('call', {m: set(e) for m, e in calls.items()})):
        cyc = cycles(g)
        if not cyc:
            print(f'# {name} graph: no cycle', file=sys.stderr if a.dot else sys.stdout)
            continue
        bad = True
        for comp in cyc:
            print(f'# {name} cycle: ' + ' <-> '.join(comp))
            if name == 'call':
                for m in comp:
                    for d in sorted(calls[m]):
                        if d in comp:
                            print(f'#   {m} -> {d}: ' + ' '.join(calls[m][d]))
    return 1 if a.check and bad else 0


if __name__ == '__main__':
    sys.exit(main())
