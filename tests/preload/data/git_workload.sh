# Git workload, run in an empty directory: a repository with 50 commits
# touching several files, a branch and a merge, then gc and fsck. Dates and
# identities are fixed, so every commit id is the same on every run.
set -eu
export GIT_AUTHOR_NAME="Pf Test" GIT_AUTHOR_EMAIL="pf@example.invalid"
export GIT_COMMITTER_NAME="Pf Test" GIT_COMMITTER_EMAIL="pf@example.invalid"
export GIT_CONFIG_NOSYSTEM=1
git init -q -b main .
git config gc.auto 0
git config pack.threads 1
for i in $(seq 1 50); do
    export GIT_AUTHOR_DATE="@$((1700000000 + i * 60)) +0000"
    export GIT_COMMITTER_DATE="$GIT_AUTHOR_DATE"
    if [ "$i" -eq 25 ]; then git checkout -q -b side; fi
    if [ "$i" -eq 35 ]; then git checkout -q main; fi
    mkdir -p "dir$((i % 5))"
    for j in $(seq 1 $((i % 7 + 1))); do
        printf 'commit %d file %d\n%s\n' "$i" "$j" "$(seq 1 $((i * j)))" > "dir$((i % 5))/file$j.txt"
    done
    git add -A
    git commit -q -m "change $i"
done
export GIT_AUTHOR_DATE="@1700009999 +0000" GIT_COMMITTER_DATE="@1700009999 +0000"
git merge -q --no-edit -X theirs side >/dev/null
git log --all --format='%H %s' | head -n 60
echo "commits: $(git rev-list --all | wc -l)"
git gc -q --aggressive
git count-objects -v | grep -E '^(count|in-pack|packs):'
git fsck --full --strict --no-progress && echo "fsck: clean"
git diff --stat HEAD~10 HEAD | tail -n 1
