# Bash workload: indexed and associative arrays, loops, functions,
# subshells, command substitution, pipes into builtins, string handling.
set -eu

declare -a list=()
declare -A count=()
for ((i = 0; i < 20000; i++)); do
    list+=("item-$((i * 7919 % 10007))")
    key="k$((i % 97))"
    count[$key]=$(( ${count[$key]:-0} + i ))
done
echo "list: ${#list[@]} first ${list[0]} last ${list[${#list[@]}-1]}"

sum=0
for k in "${!count[@]}"; do
    sum=$((sum + count[$k]))
done
echo "keys: ${#count[@]} sum: $sum"

fib() {
    local n=$1
    if ((n < 2)); then echo "$n"; return; fi
    echo $(( $(fib $((n - 1))) + $(fib $((n - 2))) ))
}
echo "fib 12: $(fib 12)"

words=""
for ((i = 0; i < 3000; i++)); do
    words+="w$((i % 50)) "
done
upper=${words^^}
echo "words: ${#words} chars, replaced: ${#upper} chars, pattern: ${words//w1 /X}" | cut -c1-60

total=0
for i in $(seq 1 100); do
    total=$(( total + $(echo "$i" | (read -r x; echo $((x * x)))) ))
done
echo "sum of squares via subshells: $total"

(
    declare -A inner=()
    for i in {1..5000}; do inner[$((i % 313))]+="$i,"; done
    echo "subshell table: ${#inner[@]} entries, entry 7 has ${#inner[7]} chars"
)

mapfile -t lines < <(for i in {1..3000}; do printf 'line %05d\n' $((3000 - i)); done)
sorted=$(printf '%s\n' "${lines[@]}" | sort | head -n 3 | tr '\n' ' ')
echo "mapfile: ${#lines[@]} lines, sorted head: $sorted"
unset list count lines
echo "done"
