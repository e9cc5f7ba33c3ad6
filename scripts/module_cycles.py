#!/usr/bin/env python3
"""Lists pairs of sibling modules in src/ that import each other (ancestor/descendant pairs, which
Rust requires for re-exports, are not counted). Heuristic: reads `use crate::…`, `super::…` and
`self::…` paths with comments and `#[cfg(test)] mod tests` stripped. Usage: python3 scripts/module_cycles.py [src]"""
import os, re, sys, itertools
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
mods = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p = os.path.join(d, f)
        rel = os.path.relpath(p, root)[:-3].split(os.sep)
        if rel[-1] in ('mod', 'lib'): rel = rel[:-1]
        mods[tuple(rel)] = p
def resolve(path):
    # longest prefix that is a module
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods: return tuple(path[:n])
    return None
edges = {m: set() for m in mods}
for m, p in mods.items():
    src = open(p).read()
    src = re.sub(r'//[^\n]*', '', src)
    src = re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*', '', src, flags=re.S)
    def expand(u):
        u = re.sub(r'\s+', '', u)
        i = u.find('{')
        if i < 0: return [u]
        depth = 0; parts = []; cur = ''; j = i + 1
        while j < len(u):
            ch = u[j]
            if ch == '{': depth += 1
            if ch == '}':
                if depth == 0: break
                depth -= 1
            if ch == ',' and depth == 0: parts.append(cur); cur = ''
            else: cur += ch
            j += 1
        parts.append(cur)
        out = []
        for p in parts:
            if p: out += expand(u[:i] + p)
        return out
    paths = []
    for st in re.findall(r'\buse\s+([^;]+);', src):
        paths += expand(st)
    text = src + '\n' + '\n'.join(paths)
    for mm in re.finditer(r'\b(crate|super|self)((?:::\w+)+)', text):
        parts = mm.group(2).split('::')[1:]
        if mm.group(1) == 'crate': base = []
        elif mm.group(1) == 'self': base = list(m)
        else:
            base = list(m); 
            # super: the parent module (file module's parent)
            base = base[:-1]
            while parts and parts[0] == 'super': parts = parts[1:]; base = base[:-1]
        t = resolve(base + parts)
        if t is None or t == m: continue
        if t[:len(m)] == m or m[:len(t)] == t: continue
        edges[m].add(t)
cyc = set()
for a in edges:
    for b in edges[a]:
        if a in edges.get(b, ()): cyc.add(tuple(sorted(['::'.join(a), '::'.join(b)])))
for c in sorted(cyc): print(' <-> '.join(c))
print(len(cyc), 'two-way imports')
