#!/usr/bin/perl

# Metadata, the queue table's life cycle, and the configuration form.

use strict;
use warnings;

use Test::More;

use C4::Context;
use Stub::CGI;
use Koha::Plugin::Org::Lectern::Connector;

my $CLASS = 'Koha::Plugin::Org::Lectern::Connector';
my $dbh   = C4::Context->dbh;
my $table = 'koha_plugin_org_lectern_connector_queue';

sub table_exists {
    return scalar $dbh->selectrow_array( q{SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?},
        undef, $table );
}

subtest 'metadata' => sub {
    my $plugin = $CLASS->new( { enable_plugins => 1 } );
    my $m      = $plugin->get_metadata;
    is $m->{class},   $CLASS,                  'class';
    is $m->{version}, $CLASS->VERSION,         'version';
    is $m->{minimum_version}, '23.11',         'minimum Koha';
    ok exists $m->{maximum_version} && !defined $m->{maximum_version}, 'no maximum';
    ok !exists $Koha::Plugin::Org::Lectern::Connector::metadata->{class}, 'the package metadata is not modified';
    ok $plugin->can($_), "can $_"
        for qw(after_circ_action after_hold_action flush cronjob_nightly install upgrade uninstall configure);
};

subtest 'the queue table' => sub {
    ok table_exists(), 'new() ran install the first time';
    my $plugin = $CLASS->new;
    ok $plugin->install, 'install again is harmless';
    my @cols = map { $_->[1] } @{ $dbh->selectall_arrayref("PRAGMA table_info($table)") };
    is_deeply \@cols, [qw(id body queued_on attempts last_error)], 'columns';
    ok $plugin->uninstall, 'uninstall';
    ok !table_exists(), 'drops it';
    ok $plugin->upgrade, 'upgrade';
    ok table_exists(), 'creates it again';
};

subtest 'configure' => sub {
    my $plugin = $CLASS->new( { cgi => Stub::CGI->new } );
    $plugin->configure;
    like $plugin->{output}, qr/^template: configure\.tt$/m, 'shows the bundled configure.tt';
    like $plugin->{output}, qr/^token_set=0$/m, 'no token yet';

    $plugin = $CLASS->new(
        { cgi => Stub::CGI->new( op => 'cud-save', lectern_url => ' https://lectern.test/ ', lectern_token => 'lct_1' ) }
    );
    $plugin->configure;
    is $plugin->{redirect}, '/cgi-bin/koha/plugins/plugins-home.pl', 'saving goes back to the plugins page';
    is $plugin->retrieve_data('lectern_url'),   'https://lectern.test', 'URL stored, trimmed';
    is $plugin->retrieve_data('lectern_token'), 'lct_1',                'token stored';

    $plugin = $CLASS->new( { cgi => Stub::CGI->new } );
    $plugin->configure;
    like $plugin->{output}, qr/^token_set=1$/m, 'the form says a token is set';
    unlike $plugin->{output}, qr/lct_1/, 'but does not show it';

    $plugin = $CLASS->new(
        { cgi => Stub::CGI->new( op => 'cud-save', lectern_url => 'https://other.test', lectern_token => '' ) } );
    $plugin->configure;
    is $plugin->retrieve_data('lectern_url'),   'https://other.test', 'URL changed';
    is $plugin->retrieve_data('lectern_token'), 'lct_1',              'an empty token field keeps the token';

    $plugin = $CLASS->new( { cgi => Stub::CGI->new( op => 'cud-save', lectern_url => 'lectern.test' ) } );
    $plugin->configure;
    like $plugin->{output}, qr/^error=bad_url$/m, 'a URL without a scheme is refused';
    ok !$plugin->{redirect}, 'and the form is shown again';
    is $plugin->retrieve_data('lectern_url'), 'https://other.test', 'nothing stored';
};

done_testing;
