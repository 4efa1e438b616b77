#!/usr/bin/perl

# The hooks only queue: they write one row, open no connection, and never
# die into Koha's circulation code. Run from the repository root with
#   prove -I connectors/koha -I connectors/koha/t/lib connectors/koha/t/

use strict;
use warnings;

# Every socket connect in the process is counted, so "the hook did no
# network I/O" is observed rather than inferred from timing. This has to be
# in place before IO::Socket (loaded by HTTP::Tiny) is compiled.
my $connects;
BEGIN {
    $connects = 0;
    *CORE::GLOBAL::connect = sub (*$) { $connects++; return CORE::connect( $_[0], $_[1] ) };
}

use FindBin;
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time);

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

# Calls the hook Koha would call for a fixture, with the object wrapped as a
# Koha::Object stand-in.
sub fire {
    my ( $plugin, $event, %opts ) = @_;
    my %payload = %{ $event->{payload} };
    my ($key) = grep { exists $payload{$_} } qw(checkout hold);
    $payload{$key} = Stub::Object->new( $payload{$key}, %opts );
    my $hook = $key eq 'checkout' ? 'after_circ_action' : 'after_hold_action';
    return $plugin->$hook( { action => $event->{action}, payload => \%payload } );
}

# A port nothing listens on: bound, then closed.
sub closed_port {
    my $s = IO::Socket::INET->new( Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp' )
        or die "cannot bind: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

my $plugin = Koha::Plugin::Org::Lectern::Connector->new;
isa_ok $plugin, 'Koha::Plugins::Base';
my $dbh   = C4::Context->dbh;
my $table = $plugin->get_qualified_table_name('queue');
is $table, 'koha_plugin_org_lectern_connector_queue', 'queue table name';

$plugin->store_data( { lectern_url => 'http://127.0.0.1:' . closed_port(), lectern_token => 'lct_test' } );

sub rows { return $dbh->selectall_arrayref( "SELECT * FROM $table ORDER BY id", { Slice => {} } ) }
sub empty_queue { $dbh->do("DELETE FROM $table") }

my @warnings;
local $SIG{__WARN__} = sub { push @warnings, $_[0] };

subtest 'a hook writes one row and opens no connection' => sub {
    empty_queue();
    my $checkout = fixture('after_circ_action-checkout.json');

    my $requests = 0;
    no warnings 'redefine';
    local *HTTP::Tiny::request = sub { $requests++; die "no HTTP in a hook\n" };
    use warnings 'redefine';

    my $before = $connects;
    my $t0     = time;
    my @ret    = fire( $plugin, $checkout );
    my $took   = time - $t0;

    is $connects - $before, 0, 'no socket was connected';
    is $requests, 0, 'no HTTP request was made';
    cmp_ok $took, '<', 0.5, sprintf( 'the hook returned quickly (%.3fs)', $took );
    is_deeply \@ret, [], 'the hook returns nothing';

    my $rows = rows();
    is scalar @$rows, 1, 'one row queued';
    is $rows->[0]{attempts}, 0, 'no attempts yet';
    like $rows->[0]{queued_on}, qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, 'queued_on is a DATETIME';
    is_deeply decode_json( $rows->[0]{body} ), $checkout, 'the body is the hook parameters, objects as TO_JSON';
};

subtest 'every fixture is queued in exactly its own shape' => sub {
    empty_queue();
    opendir my $d, $FIXTURES or die $!;
    my @names = sort grep {/^after_(circ|hold)_action-.*\.json$/} readdir $d;
    ok @names >= 8, scalar(@names) . ' fixtures';
    fire( $plugin, fixture($_) ) for @names;
    my $rows = rows();
    is scalar @$rows, scalar @names, 'one row each, in order';
    for my $i ( 0 .. $#names ) {
        is_deeply decode_json( $rows->[$i]{body} ), fixture( $names[$i] ), $names[$i];
    }
    is scalar( grep { $_->{body} =~ /[^\x00-\x7f]/ } @$rows ), 0, 'every body is ASCII';
};

subtest 'non-ASCII text survives any database character set' => sub {
    empty_queue();
    my $place = fixture('after_hold_action-place.json');
    $place->{payload}{hold}{reservenotes} = "R\x{e9}serv\x{e9} \x{2014} \x{672c}";
    fire( $plugin, $place );
    my ($body) = map { $_->{body} } @{ rows() };
    unlike $body, qr/[^\x00-\x7f]/, 'stored as ASCII, with \\u escapes';
    is decode_json($body)->{payload}{hold}{reservenotes}, "R\x{e9}serv\x{e9} \x{2014} \x{672c}", 'and decodes back';
};

subtest 'a hold cancel inside Koha\'s transaction is committed with it' => sub {
    empty_queue();
    my $cancel = fixture('after_hold_action-cancel.json');

    # Koha::Hold->cancel calls the hook inside txn_do on the same handle.
    $dbh->begin_work;
    fire( $plugin, $cancel );
    ok !$dbh->{AutoCommit}, 'the hook left the enclosing transaction open';
    $dbh->commit;
    my $rows = rows();
    is scalar @$rows, 1, 'the row is there after the commit, though Lectern is down';
    is decode_json( $rows->[0]{body} )->{action}, 'cancel', 'it is the cancel';

    # And a rolled-back cancel never happened, so nothing is sent for it.
    $dbh->begin_work;
    fire( $plugin, $cancel );
    $dbh->rollback;
    is scalar @{ rows() }, 1, 'a rolled-back action leaves no row';

    # Outside a transaction the row is written at once.
    fire( $plugin, $cancel );
    ok $dbh->{AutoCommit}, 'AutoCommit is untouched';
    is scalar @{ rows() }, 2, 'queued without a transaction';
};

subtest 'flush with Lectern down keeps every row' => sub {
    empty_queue();
    fire( $plugin, fixture($_) )
        for qw(after_circ_action-checkout.json after_hold_action-waiting.json after_hold_action-cancel.json);
    my $before = rows();

    my $t0     = time;
    my $result = $plugin->flush;
    ok $connects > 0, 'flush does try to connect (so the connect counter works)';
    is_deeply { map { $_ => $result->{$_} } qw(sent failed kept) }, { sent => 0, failed => 0, kept => 3 },
        'nothing sent, nothing refused, three kept';
    like $result->{error}, qr/could not reach Lectern/, 'the error says why';

    my $after = rows();
    is scalar @$after, 3, 'all rows are still queued';
    is_deeply [ map { [ $_->{id}, $_->{body}, $_->{attempts} ] } @$after ],
        [ map { [ $_->{id}, $_->{body}, 0 ] } @$before ],
        'same rows, same order, no attempt counted for an outage';
    like $after->[0]{last_error}, qr/could not reach Lectern/, 'the first row records the error';
    ok !defined $after->[1]{last_error}, 'rows after it were not tried';

    is_deeply $plugin->flush, $result, 'a second flush does the same';
};

subtest 'a hook whose object dies in TO_JSON does not die' => sub {
    empty_queue();
    @warnings = ();
    my $checkout = fixture('after_circ_action-checkout.json');

    my $lived = eval { fire( $plugin, $checkout, fail => ['TO_JSON'] ); 1 };
    ok $lived, 'the hook returned' or diag $@;
    like "@warnings", qr/TO_JSON failed/, 'and warned';
    my $rows = rows();
    is scalar @$rows, 1, 'the event is still queued';
    is_deeply decode_json( $rows->[0]{body} )->{payload}{checkout}, $checkout->{payload}{checkout},
        'from unblessed instead';

    empty_queue();
    @warnings = ();
    $lived = eval { fire( $plugin, $checkout, fail => [qw(TO_JSON unblessed)] ); 1 };
    ok $lived, 'the hook returned when nothing can serialise the object' or diag $@;
    like "@warnings", qr/unblessed failed/, 'and warned';
    is scalar @{ rows() }, 0, 'nothing was queued';
};

subtest 'a hook never dies, even when the database refuses the row' => sub {
    @warnings = ();
    $plugin->uninstall;
    my $lived = eval { fire( $plugin, fixture('after_hold_action-place.json') ); 1 };
    ok $lived, 'the hook returned with the queue table missing' or diag $@;
    like "@warnings", qr/could not queue after_hold_action 'place'/, 'and warned';
    $plugin->install;
};

subtest 'payloads Lectern cannot read are not queued' => sub {
    empty_queue();
    @warnings = ();
    # A locally patched Koha sends this for a check-in of an item not on loan.
    $plugin->after_circ_action(
        { action => 'checkin_no_issue', payload => { checkin => Stub::Object->new( { itemnumber => 1 } ) } } );
    $plugin->after_hold_action(undef);
    $plugin->after_hold_action( { action => 'place' } );
    is scalar @{ rows() }, 0, 'no rows';
    is "@warnings", '', 'no warnings';
};

done_testing;
