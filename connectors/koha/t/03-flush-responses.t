#!/usr/bin/perl

# How flush treats each kind of answer, with HTTP::Tiny's request replaced
# by a script of responses, so no server is needed.

use strict;
use warnings;

use JSON::PP;
use Test::More;

use C4::Context;
use Stub::Object;
use Koha::Plugin::Org::Lectern::Connector;

my $plugin = Koha::Plugin::Org::Lectern::Connector->new;
my $dbh    = C4::Context->dbh;
my $table  = $plugin->get_qualified_table_name('queue');

# A trailing slash in the configured URL must not give "//v1/...".
$plugin->store_data( { lectern_url => 'https://lectern.test/', lectern_token => 'lct_abc' } );

my ( @requests, @script );
{
    no warnings 'redefine';
    *HTTP::Tiny::request = sub {
        my ( $http, $method, $url, $args ) = @_;
        push @requests, { http => $http, method => $method, url => $url, %$args };
        my $next = shift @script // die "more requests than the test scripted\n";
        my ( $status, $content ) = @$next;
        my %reason = ( 200 => 'OK', 401 => 'Unauthorized', 422 => 'Unprocessable Entity',
            429 => 'Too Many Requests', 503 => 'Service Unavailable', 599 => 'Internal Exception' );
        return { status => $status, reason => $reason{$status} // '', content => $content,
            success => ( $status =~ /^2/ ? 1 : '' ), headers => {} };
    };
}

sub rows { return $dbh->selectall_arrayref( "SELECT * FROM $table ORDER BY id", { Slice => {} } ) }

sub queue {
    my ($n) = @_;
    for my $i ( 1 .. $n ) {
        $plugin->after_hold_action(
            { action => 'place', payload => { hold => Stub::Object->new( { reserve_id => $i } ) } } );
    }
}

sub counts { my ($r) = @_; return { map { $_ => $r->{$_} } qw(sent failed kept) } }

subtest 'a refused row is skipped; an outage stops the run' => sub {
    queue(5);
    my @ids = map { $_->{id} } @{ rows() };
    @requests = ();
    @script   = ( [ 200, '{"duplicate":false}' ], [ 422, '{"error":"not a hold action"}' ],
        [ 200, '{"duplicate":true}' ], [ 503, 'store unavailable' ] );

    my $r = $plugin->flush;
    is_deeply counts($r), { sent => 2, failed => 1, kept => 2 }, 'two sent, one refused, two kept';
    like $r->{error}, qr/^HTTP 503/, 'the stop is explained';
    is scalar @requests, 4, 'the fifth row was not tried';

    my $first = $requests[0];
    is $first->{method}, 'POST', 'POST';
    is $first->{url}, 'https://lectern.test/v1/ils/koha/events', 'to the events route';
    is $first->{headers}{Authorization}, 'Bearer lct_abc', 'with the token';
    is $first->{headers}{'Content-Type'}, 'application/json', 'as JSON';
    is_deeply decode_json( $first->{content} ),
        { action => 'place', payload => { hold => { reserve_id => 1 } } }, 'the queued body';
    ok $first->{http}{verify_SSL}, 'certificates are checked';
    is_deeply [ map { decode_json( $_->{content} )->{payload}{hold}{reserve_id} } @requests ], [ 1 .. 4 ],
        'in queue order';

    my $rows = rows();
    is_deeply [ map { $_->{id} } @$rows ], [ @ids[ 1, 3, 4 ] ], 'sent rows are deleted';
    is $rows->[0]{attempts}, 1, 'the refused row counts an attempt';
    like $rows->[0]{last_error}, qr/^HTTP 422 .*not a hold action/, 'and keeps Lectern\'s answer';
    is $rows->[1]{attempts}, 0, 'an outage counts no attempt';
    like $rows->[1]{last_error}, qr/^HTTP 503/, 'but is recorded';
    ok !defined $rows->[2]{last_error}, 'the untried row is untouched';

    @requests = ();
    @script   = ( [ 200, '{}' ] ) x 3;
    is_deeply counts( $plugin->flush ), { sent => 3, failed => 0, kept => 0 }, 'next run sends the rest';
    is scalar @{ rows() }, 0, 'and the queue is empty';
};

subtest 'a row refused ten times is no longer sent' => sub {
    queue(2);
    my ( $dead, $live ) = map { $_->{id} } @{ rows() };
    $dbh->do( "UPDATE $table SET attempts = 9 WHERE id = ?", undef, $dead );
    @requests = ();
    @script   = ( [ 422, 'no' ], [ 200, '{}' ] );
    is_deeply counts( $plugin->flush ), { sent => 1, failed => 1, kept => 0 }, 'the tenth refusal';

    queue(1);
    @requests = ();
    @script   = ( [ 200, '{}' ] );
    is_deeply counts( $plugin->flush ), { sent => 1, failed => 0, kept => 0 }, 'then only the new row is sent';
    is scalar @requests, 1, 'one request';
    my $rows = rows();
    is_deeply [ map { [ $_->{id}, $_->{attempts} ] } @$rows ], [ [ $dead, 10 ] ],
        'the refused row stays for a person to look at';
    $dbh->do("DELETE FROM $table");
};

subtest 'answers about the connector, not the row, stop the run' => sub {
    for my $case ( [ 401, '{"error":"no valid token"}' ], [ 429, 'slow down' ], [ 599, 'Connection refused' ] ) {
        queue(2);
        @requests = ();
        @script   = ($case);
        my $r = $plugin->flush;
        is_deeply counts($r), { sent => 0, failed => 0, kept => 2 }, "$case->[0]: both rows kept";
        is scalar @requests, 1, "$case->[0]: one request";
        is_deeply [ map { $_->{attempts} } @{ rows() } ], [ 0, 0 ], "$case->[0]: no attempt counted";
        $dbh->do("DELETE FROM $table");
    }
};

subtest 'nothing is sent before the plugin is configured' => sub {
    local $Koha::Plugins::Base::DATA{ ref $plugin } = {};
    queue(1);
    @requests = ();
    my $r = $plugin->flush;
    is_deeply counts($r), { sent => 0, failed => 0, kept => 1 }, 'kept';
    like $r->{error}, qr/not configured/, 'and why';
    is scalar @requests, 0, 'no request';
    $dbh->do("DELETE FROM $table");
};

subtest 'cronjob_nightly flushes' => sub {
    queue(1);
    @requests = ();
    @script   = ( [ 200, '{}' ] );
    is_deeply counts( $plugin->cronjob_nightly ), { sent => 1, failed => 0, kept => 0 }, 'sent';
    is scalar @{ rows() }, 0, 'queue empty';
};

done_testing;
