package C4::Context;

# STUB for the plugin's tests, not Koha's C4::Context. It provides only what
# the Lectern connector calls: one database handle per process (an in-memory
# SQLite database, standing in for Koha's MySQL handle), and the
# configuration and system preferences as plain hashes the tests can set.

use strict;
use warnings;

use DBI;

our %CONFIG      = ( enable_plugins => 1 );
our %PREFERENCES = ();

my $dbh;

sub dbh {
    $dbh //= DBI->connect( 'dbi:SQLite:dbname=:memory:', '', '',
        { RaiseError => 1, PrintError => 0, AutoCommit => 1 } );
    return $dbh;
}

sub config {
    my ( $class, $name ) = @_;
    return $CONFIG{$name};
}

sub preference {
    my ( $class, $name ) = @_;
    return $PREFERENCES{$name};
}

1;
