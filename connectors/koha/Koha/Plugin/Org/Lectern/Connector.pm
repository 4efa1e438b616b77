package Koha::Plugin::Org::Lectern::Connector;

# Lectern connector for Koha: forwards Koha's circulation and hold hooks to
# Lectern's HTTP service.
#
# Copyright the Lectern authors. Licensed under the Apache License 2.0.
# This plugin is written against Koha's documented plugin interface and
# contains no code taken from Koha.

use strict;
use warnings;

use base qw(Koha::Plugins::Base);

use C4::Context;
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(strftime);
use Scalar::Util qw(blessed);

our $VERSION = '1.0.0';

our $metadata = {
    name            => 'Lectern connector',
    author          => 'The Lectern authors',
    description     => 'Queues circulation and hold events from Koha and sends them to Lectern.',
    date_authored   => '2026-03-01',
    date_updated    => '2026-03-01',
    minimum_version => '23.11',
    maximum_version => undef,
    version         => $VERSION,
};

# A row Lectern refused this many times is left in the table for a person to
# look at; retrying it every minute forever would only fill the logs.
use constant MAX_ATTEMPTS => 10;

# Rows are read in pages so that a long backlog (after an outage) does not
# have to fit in memory at once.
use constant PAGE_SIZE => 100;

use constant EVENTS_PATH => '/v1/ils/koha/events';

sub new {
    my ( $class, $args ) = @_;

    # Koha::Plugins->get_enabled_plugins calls ->new() with no argument at
    # all, so $args may be undef. The metadata is copied so that the shared
    # package hash is never written to.
    return Koha::Plugins::Base::new(
        $class,
        {   %{ $args // {} },
            metadata => { %$metadata, class => $class },
        }
    );
}

# ---------------------------------------------------------------------------
# Hooks. Koha calls these inside the request that checks an item out or
# cancels a hold, sometimes inside its database transaction. They must be
# quick and must never fail the librarian's action, so they only write one
# row to the plugin's own table; `flush` does the network work later.
# ---------------------------------------------------------------------------

sub after_circ_action {
    my ( $self, $params ) = @_;
    return $self->_enqueue( 'checkout', 'after_circ_action', $params );
}

sub after_hold_action {
    my ( $self, $params ) = @_;
    return $self->_enqueue( 'hold', 'after_hold_action', $params );
}

sub _enqueue {
    my ( $self, $key, $hook, $params ) = @_;

    my $ok = eval {
        my $body = $self->_event_body( $key, $hook, $params );
        if ( defined $body ) {
            # One plain INSERT on Koha's own handle: inside Koha's
            # transaction it commits or rolls back with the circulation
            # change itself, so Lectern never hears of an action that
            # did not happen. No begin_work/commit here, which would
            # break an enclosing transaction.
            C4::Context->dbh->do(
                'INSERT INTO ' . $self->_queue_table . ' (body, queued_on, attempts) VALUES (?, ?, 0)',
                undef, $body, _now()
            );
        }
        1;
    };
    unless ($ok) {
        my $action = ( ref $params eq 'HASH' && defined $params->{action} ) ? $params->{action} : '?';
        warn "Lectern connector: could not queue $hook '$action': " . ( $@ || 'unknown error' );
    }
    return;
}

# The JSON text to queue, or undef when there is nothing Lectern could read.
sub _event_body {
    my ( $self, $key, $hook, $params ) = @_;

    return unless ref $params eq 'HASH' && ref $params->{payload} eq 'HASH';
    my $payload = $params->{payload};

    # Koha's own hooks always carry the object under this key; a payload
    # without it (for example a locally patched Koha's `checkin_no_issue`)
    # is not something Lectern reads, so it is not queued to be refused.
    return unless defined $payload->{$key};

    my $object = _serialise( $payload->{$key}, "$hook '" . ( $params->{action} // '' ) . "'" );
    return unless defined $object;

    my %out = ( $key => $object );
    $out{type} = $payload->{type} if defined $payload->{type} && !ref $payload->{type};

    return _json()->encode( { action => $params->{action}, payload => \%out } );
}

# TO_JSON gives typed values (numbers, true/false, RFC 3339 times), which is
# what Lectern prefers; unblessed (raw column values) is the fallback when
# TO_JSON is missing or dies, because an event with string values is still
# better than no event at all.
sub _serialise {
    my ( $object, $what ) = @_;

    return $object if ref $object eq 'HASH';
    return unless blessed $object;

    for my $method (qw(TO_JSON unblessed)) {
        next unless $object->can($method);
        my $data = eval { $object->$method };
        return $data if ref $data eq 'HASH';
        warn "Lectern connector: $method failed for $what: " . ( $@ || "did not return a hash\n" );
    }
    return;
}

# ASCII output escapes every non-ASCII character as \uXXXX, so the stored
# text means the same whatever character set the database connection or the
# column uses, and it can be sent as bytes without re-encoding.
sub _json {
    return JSON::PP->new->ascii->canonical->allow_blessed->convert_blessed;
}

sub _now {
    return strftime( '%Y-%m-%d %H:%M:%S', localtime );
}

sub _queue_table {
    my ($self) = @_;
    return $self->get_qualified_table_name('queue');
}

# ---------------------------------------------------------------------------
# Delivery.
# ---------------------------------------------------------------------------

# Statuses that say nothing about the row itself: Lectern is busy, or the
# connector is misconfigured (wrong token, wrong URL). Sending the same row
# later may succeed, so it is kept without counting an attempt, and the rows
# after it are not tried, since they would meet the same answer.
my %RETRY_LATER = map { $_ => 1 } qw(401 403 404 408 429);

sub flush {
    my ($self) = @_;

    my %result = ( sent => 0, failed => 0, kept => 0 );
    my $dbh    = C4::Context->dbh;
    my $table  = $self->_queue_table;

    my $url   = $self->retrieve_data('lectern_url')   // '';
    my $token = $self->retrieve_data('lectern_token') // '';
    $url =~ s{\s+}{}g;
    $url =~ s{/+\z}{};
    unless ( length $url && length $token ) {
        $result{kept}  = $self->_pending_from( $dbh, 0 );
        $result{error} = 'the Lectern URL and token are not configured';
        return \%result;
    }

    my $http = HTTP::Tiny->new(
        agent => "lectern-koha-connector/$VERSION",

        # HTTP::Tiny before 0.083 does not check certificates unless told.
        verify_SSL => 1,
        timeout    => 20,
    );
    my %headers = (
        'Authorization' => "Bearer $token",
        'Content-Type'  => 'application/json',
        'Accept'        => 'application/json',
    );

    my $last_id = 0;
    PAGE: while (1) {
        my $rows = $dbh->selectall_arrayref(
            "SELECT id, body FROM $table WHERE id > ? AND attempts < ? ORDER BY id LIMIT " . PAGE_SIZE,
            { Slice => {} },
            $last_id, MAX_ATTEMPTS
        );
        last PAGE unless @$rows;

        for my $row (@$rows) {
            $last_id = $row->{id};
            my $content = $row->{body};
            utf8::encode($content) if utf8::is_utf8($content);

            my $res = $http->request( 'POST', $url . EVENTS_PATH, { headers => \%headers, content => $content } );
            my $status = $res->{status};

            # Lectern answers 200, with {"duplicate":true} for an event it
            # already has, so a row sent twice is harmless.
            if ( $status >= 200 && $status < 300 ) {
                $dbh->do( "DELETE FROM $table WHERE id = ?", undef, $row->{id} );
                $result{sent}++;
                next;
            }

            my $error = _describe($res);
            if ( $status >= 400 && $status < 500 && !$RETRY_LATER{$status} ) {
                # Lectern read this row and will not take it. Keep it for a
                # person to look at, but let the rows behind it through.
                $dbh->do( "UPDATE $table SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                    undef, $error, $row->{id} );
                $result{failed}++;
                next;
            }

            # Lectern is down, overloaded or unreachable, or refuses the
            # connector as a whole: stop, keep this row and everything after
            # it in order, and try again next time.
            $dbh->do( "UPDATE $table SET last_error = ? WHERE id = ?", undef, $error, $row->{id} );
            $result{kept}  = $self->_pending_from( $dbh, $row->{id} );
            $result{error} = $error;
            last PAGE;
        }
    }

    return \%result;
}

sub _pending_from {
    my ( $self, $dbh, $from_id ) = @_;
    my ($n) = $dbh->selectrow_array( 'SELECT COUNT(*) FROM ' . $self->_queue_table . ' WHERE id >= ? AND attempts < ?',
        undef, $from_id, MAX_ATTEMPTS );
    return $n + 0;
}

sub _describe {
    my ($res) = @_;
    my $text = $res->{content} // '';
    $text =~ s/\s+/ /g;
    $text = substr( $text, 0, 500 ) . '...' if length $text > 500;
    return $res->{status} == 599
        ? "could not reach Lectern: $text"
        : "HTTP $res->{status} $res->{reason}: $text";
}

# Koha's misc/cronjobs/plugins_nightly.pl calls this. It is the safety net;
# bin/lectern-flush.pl run from cron every minute is what keeps Lectern
# current.
sub cronjob_nightly {
    my ($self) = @_;
    my $r = $self->flush;
    if ( $r->{failed} || $r->{kept} ) {
        warn sprintf "Lectern connector: sent %d, refused %d, %d waiting%s\n",
            $r->{sent}, $r->{failed}, $r->{kept}, ( $r->{error} ? " ($r->{error})" : '' );
    }
    return $r;
}

# ---------------------------------------------------------------------------
# Installation and configuration.
# ---------------------------------------------------------------------------

sub install {
    my ( $self, $args ) = @_;
    my $dbh   = C4::Context->dbh;
    my $table = $self->_queue_table;

    # Production Koha runs on MySQL/MariaDB; the SQLite form is for the
    # plugin's own tests.
    if ( ( $dbh->{Driver}->{Name} // '' ) eq 'SQLite' ) {
        $dbh->do(
            "CREATE TABLE IF NOT EXISTS $table (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                body TEXT NOT NULL,
                queued_on TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                last_error TEXT
            )"
        );
    }
    else {
        $dbh->do(
            "CREATE TABLE IF NOT EXISTS $table (
                id INT AUTO_INCREMENT PRIMARY KEY,
                body LONGTEXT NOT NULL,
                queued_on DATETIME NOT NULL,
                attempts INT NOT NULL DEFAULT 0,
                last_error TEXT
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
    }
    return 1;
}

# Koha calls this when the plugin's version goes up; the table is created
# only if missing, so running install again is safe.
sub upgrade {
    my ( $self, $args ) = @_;
    return $self->install($args);
}

sub uninstall {
    my ( $self, $args ) = @_;
    C4::Context->dbh->do( 'DROP TABLE IF EXISTS ' . $self->_queue_table );
    return 1;
}

sub configure {
    my ( $self, $args ) = @_;
    my $cgi = $self->{cgi};

    # Koha 24.05 and later only accept state-changing POSTs whose `op`
    # starts with `cud-`; the form sends `cud-save`.
    my $op = $cgi ? ( scalar( $cgi->param('op') ) // '' ) : '';
    if ( $op eq 'cud-save' ) {
        my $url   = scalar( $cgi->param('lectern_url') )   // '';
        my $token = scalar( $cgi->param('lectern_token') ) // '';
        s/^\s+|\s+$//g for $url, $token;
        $url =~ s{/+\z}{};

        if ( $url !~ m{\Ahttps?://[^/\s]+}i ) {
            return $self->_show_configure( { error => 'bad_url', lectern_url => $url } );
        }

        # The token is never shown again, so an empty field means "keep it".
        my %data = ( lectern_url => $url );
        $data{lectern_token} = $token if length $token;
        $self->store_data( \%data );
        return $self->go_home;
    }
    return $self->_show_configure( {} );
}

sub _show_configure {
    my ( $self, $extra ) = @_;
    my $template = $self->get_template( { file => 'configure.tt' } );
    $template->param(
        lectern_url => $self->retrieve_data('lectern_url') // '',
        token_set   => ( length( $self->retrieve_data('lectern_token') // '' ) ? 1 : 0 ),
        pending     => eval { $self->_pending_from( C4::Context->dbh, 0 ) } // 0,
        given_up    => eval {
            ( C4::Context->dbh->selectrow_array(
                    'SELECT COUNT(*) FROM ' . $self->_queue_table . ' WHERE attempts >= ?',
                    undef, MAX_ATTEMPTS ) )[0];
        } // 0,
        %$extra,
    );
    return $self->output_html( $template->output );
}

1;

__END__

=head1 NAME

Koha::Plugin::Org::Lectern::Connector - send Koha circulation and hold events to Lectern

=head1 DESCRIPTION

C<after_circ_action> and C<after_hold_action> store each event as JSON in
the plugin's queue table and return; they never call the network. C<flush>
(run by F<bin/lectern-flush.pl> from cron, and by C<cronjob_nightly>) posts
the queued events in order to C<< <url>/v1/ils/koha/events >>.

C<flush> returns C<< { sent => N, failed => N, kept => N } >>, plus C<error>
when it stopped early: C<sent> rows were accepted and deleted; C<failed>
rows were refused with a 4xx and stay in the table with C<attempts> and
C<last_error> (rows refused 10 times are no longer sent); C<kept> rows are
waiting because Lectern could not take them now.

=cut
