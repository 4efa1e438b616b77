#!/usr/bin/perl

# Against a running Lectern: set LECTERN_URL (for example
# http://127.0.0.1:8080) and LECTERN_TOKEN (from
# `lectern staff add koha --role ils`). Skipped otherwise.

use strict;
use warnings;

use FindBin;
use JSON::PP;
use Test::More;

BEGIN {
    plan skip_all => 'set LECTERN_URL and LECTERN_TOKEN to send to a running Lectern'
        unless $ENV{LECTERN_URL} && $ENV{LECTERN_TOKEN};
}

use C4::Context;
use Stub::Object;
use Koha::Plugin::Org::Lectern::Connector;

my $FIXTURES = "$FindBin::Bin/../../../tests/fixtures/ils/koha";

sub fixture {
    my ($name) = @_;
    open my $fh, '<:raw', "$FIXTURES/$name" or die "$FIXTURES/$name: $!";
    local $/;
    return JSON::PP->new->utf8->decode(<$fh>);
}

sub fire {
    my ( $plugin, $event ) = @_;
    my %payload = %{ $event->{payload} };
    my ($key) = grep { exists $payload{$_} } qw(checkout hold);
    $payload{$key} = Stub::Object->new( $payload{$key} );
    my $hook = $key eq 'checkout' ? 'after_circ_action' : 'after_hold_action';
    return $plugin->$hook( { action => $event->{action}, payload => \%payload } );
}

my $plugin = Koha::Plugin::Org::Lectern::Connector->new;
$plugin->store_data( { lectern_url => $ENV{LECTERN_URL}, lectern_token => $ENV{LECTERN_TOKEN} } );
my $dbh   = C4::Context->dbh;
my $table = $plugin->get_qualified_table_name('queue');
sub queued { return scalar $dbh->selectrow_array("SELECT COUNT(*) FROM $table") }

# Every answer Lectern gives, kept for the assertions.
my @answers;
{
    my $request = \&HTTP::Tiny::request;
    no warnings 'redefine';
    *HTTP::Tiny::request = sub {
        my $res = $request->(@_);
        push @answers, $res;
        return $res;
    };
}

my $checkout = fixture('after_circ_action-checkout.json');
fire( $plugin, $checkout );
fire( $plugin, fixture('after_hold_action-waiting.json') );
fire( $plugin, fixture('after_hold_action-cancel.json') );
is queued(), 3, 'three events queued';

my $r = $plugin->flush;
is $r->{sent}, 3, 'Lectern took all three'
    or diag explain { result => $r, answers => [ map { "$_->{status} $_->{content}" } @answers ] };
is queued(), 0, 'the queue is empty';

@answers = ();
fire( $plugin, $checkout );
$r = $plugin->flush;
is $r->{sent}, 1, 'the same checkout again is sent';
is scalar @answers, 1, 'in one request';
is $answers[0]{status}, 200, 'Lectern answers 200';
is_deeply decode_json( $answers[0]{content} ), { duplicate => JSON::PP::true }, 'and knows it already has it';
is queued(), 0, 'the queue is empty again';

done_testing;
