package Stub::Object;

# STUB of a Koha::Object (a Koha::Checkout, Koha::Hold, ...) for the plugin's
# tests: it wraps a hashref and returns copies of it from TO_JSON and
# unblessed. `fail => [qw(TO_JSON)]` makes the named methods die, as a real
# object can when, say, a date column holds garbage.

use strict;
use warnings;

sub new {
    my ( $class, $data, %opts ) = @_;
    return bless { data => {%$data}, fail => { map { $_ => 1 } @{ $opts{fail} // [] } } }, $class;
}

sub TO_JSON   { return $_[0]->_copy('TO_JSON') }
sub unblessed { return $_[0]->_copy('unblessed') }

sub _copy {
    my ( $self, $method ) = @_;
    die "Stub::Object: $method failed\n" if $self->{fail}{$method};
    return { %{ $self->{data} } };
}

1;
