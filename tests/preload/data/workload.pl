# Perl workload: large hashes, regular expressions, sorting, string building.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my $seed = 12345;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed; }

my %h;
for my $i (1 .. 150000) {
    my $k = sprintf("key-%06d-%s", rnd() % 200000, ("x" x (rnd() % 17)));
    $h{$k} .= "$i,";
}
my @keys = sort keys %h;
print "distinct keys: ", scalar(@keys), "\n";
print "keys digest: ", md5_hex(join("\n", @keys)), "\n";

my $text = join(" ", map { sprintf("word%d-%d", rnd() % 5000, rnd() % 100) } 1 .. 100000);
my %seen;
my $matches = 0;
while ($text =~ /word(\d+)-(\d\d)\b/g) {
    $matches++;
    $seen{$1}++ if $2 > 50;
}
(my $copy = $text) =~ s/word(\d+)-(\d+)/W$2:$1/g;
print "matches: $matches, seen: ", scalar(keys %seen), "\n";
print "rewrite digest: ", md5_hex($copy), "\n";

my @nums = map { rnd() % 1000000 } 1 .. 200000;
my @sorted = sort { $a <=> $b } @nums;
my @by_str = sort @nums;
my @uniq = do { my %u; grep { !$u{$_}++ } @sorted };
print "min $sorted[0] max $sorted[-1] unique ", scalar(@uniq), "\n";
print "string-sort digest: ", md5_hex(join(",", @by_str)), "\n";

my @records = map { { id => $_, name => "n" . ($_ * 7 % 1000), tags => [ $_ % 3, $_ % 5 ] } } 1 .. 50000;
my %groups;
push @{ $groups{ $_->{name} } }, $_->{id} for @records;
my $biggest = (sort { scalar(@{ $groups{$b} }) <=> scalar(@{ $groups{$a} }) || $a cmp $b } keys %groups)[0];
print "groups: ", scalar(keys %groups), " biggest: $biggest\n";
undef %h;
undef @records;
print "done\n";
