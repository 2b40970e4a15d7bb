#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The layers, as the linker sees them:
#   check_layers.sh LIBCORE.a LIBFS.a
# fails when an object of core uses a symbol that an object of fs
# defines (core may not call up), or when the objects of both libraries
# use each other in a circle (a uses b uses ... uses a). Prints each edge
# of a cycle it finds. Needs nm.

set -eu

[ $# -eq 2 ] || { echo "usage: $0 LIBCORE.a LIBFS.a" >&2; exit 2; }

# "LAYER OBJECT KIND SYMBOL" lines: KIND is D (defined) or U (used).
symbols() {
	# POSIX format: "LIB[DIR/OBJECT]: SYMBOL KIND [VALUE SIZE]"
	nm -A -P "$2" | awk -v layer="$1" '
		{
			obj = $1; sub(/\]:$/, "", obj); sub(/^.*[[\/]/, "", obj)
			if ($3 == "U")
				print layer, obj, "U", $2
			else if ($3 ~ /^[TDBRCVWG]$/)
				print layer, obj, "D", $2
		}'
}

{ symbols core "$1"; symbols fs "$2"; } | awk '
	$3 == "D" { def[$4] = $2; layer[$2] = $1; next }
	{ use[NR] = $2 " " $4; layer[$2] = $1 }
	END {
		bad = 0
		for (i in use) {
			split(use[i], u, " ")
			to = def[u[2]]
			if (to == "" || to == u[1])
				continue
			if (layer[u[1]] == "core" && layer[to] == "fs") {
				printf "core calls up: %s uses %s of %s\n", \
					u[1], u[2], to
				bad = 1
			}
			if (!((u[1], to) in edge)) {
				edge[u[1], to] = u[2]
				out[u[1]] = out[u[1]] " " to
			}
		}
		# Take away every object that uses none of those left, or
		# that none of those left uses; what stays lies on a cycle
		# (or between two).
		for (o in layer) {
			alive[o] = 1
			nobj++
		}
		do {
			changed = 0
			for (o in alive)
				used[o] = 0
			for (o in alive) {
				n = split(out[o], tos, " ")
				leaf = 1
				for (j = 1; j <= n; j++)
					if (tos[j] in alive) {
						leaf = 0
						used[tos[j]] = 1
					}
				if (leaf) {
					delete alive[o]
					changed = 1
				}
			}
			for (o in alive)
				if (!used[o]) {
					delete alive[o]
					changed = 1
				}
		} while (changed)
		for (o in alive) {
			n = split(out[o], tos, " ")
			for (j = 1; j <= n; j++)
				if (tos[j] in alive)
					printf "cycle: %s -> %s (%s)\n", o, \
						tos[j], edge[o, tos[j]]
			bad = 1
		}
		if (!bad)
			printf "layers: %d objects, no call up, no cycle\n", \
				nobj
		exit bad
	}'
