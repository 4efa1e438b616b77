#!/usr/bin/perl

# Sends the events the Lectern connector plugin has queued. Run it from cron
# inside the Koha instance's environment, every minute:
#
#   * * * * * root koha-shell -c 'perl /path/to/lectern-flush.pl' INSTANCE
#
# Silent unless Lectern refused an event (or with --verbose). While Lectern
# is unreachable the events wait in the queue and the reason is kept in the
# table's last_error column; the nightly plugin job reports it.
#
# Copyright the Lectern authors. Licensed under the Apache License 2.0.

use strict;
use warnings;

use Getopt::Long qw(GetOptions);

use Koha::Script -cron;
use Koha::Plugins;

my $CLASS = 'Koha::Plugin::Org::Lectern::Connector';

my $verbose = 0;
GetOptions( 'verbose|v' => \$verbose ) or die "usage: $0 [--verbose]\n";

# A run that is still waiting on a slow Lectern must not be overtaken by the
# next minute's run, which would send the same rows again.
my $script = Koha::Script->new( { script => $0 } );
unless ( eval { $script->lock_exec; 1 } ) {
    print "another lectern-flush.pl is still running\n" if $verbose;
    exit 0;
}

my $plugins = Koha::Plugins->new
    or die "plugins are disabled: set <enable_plugins>1</enable_plugins> in koha-conf.xml\n";

# GetPlugins returns the enabled plugins that have a `flush` method, and
# loading Koha::Plugins has put the plugins directory on @INC.
my ($plugin) = grep { ref $_ eq $CLASS } $plugins->GetPlugins( { method => 'flush' } );
unless ($plugin) {
    print "the Lectern connector plugin is not installed or not enabled\n" if $verbose;
    exit 0;
}

my $r = $plugin->flush;
my $summary = sprintf 'sent %d, refused %d, waiting %d%s', $r->{sent}, $r->{failed}, $r->{kept},
    ( $r->{error} ? " ($r->{error})" : '' );

if ( $r->{failed} ) {
    warn "Lectern refused $r->{failed} event(s); see last_error in "
        . $plugin->get_qualified_table_name('queue') . ". $summary\n";
}
elsif ($verbose) {
    print "$summary\n";
}
exit 0;
