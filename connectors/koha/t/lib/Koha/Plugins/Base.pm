package Koha::Plugins::Base;

# STUB for the plugin's tests, not Koha's Koha::Plugins::Base. It keeps the
# parts of the real class's behaviour the connector relies on: `new` blesses
# its arguments and runs `install` the first time; `store_data` and
# `retrieve_data` keep per-class key/value pairs (in memory here, the
# plugin_data table in Koha); the qualified table name is built the same way.

use strict;
use warnings;

use C4::Context;

# class => { key => value }, shared by every instance like the real table.
our %DATA;

sub new {
    my ( $class, $args ) = @_;
    return unless C4::Context->config('enable_plugins') || $args->{enable_plugins};

    $args->{class} = $class;
    my $self = bless $args, $class;
    if ( $self->can('install') && !$self->retrieve_data('__INSTALLED__') ) {
        if ( $self->install ) {
            $self->store_data( { __INSTALLED__ => 1, __ENABLED__ => 1 } );
        }
        else {
            warn "Plugin $class failed during installation!";
        }
    }
    return $self;
}

sub get_metadata { return $_[0]->{metadata} }

sub store_data {
    my ( $self, $data ) = @_;
    $DATA{ $self->{class} }{$_} = $data->{$_} for keys %$data;
    return;
}

sub retrieve_data {
    my ( $self, $key ) = @_;
    return $DATA{ $self->{class} }{$key};
}

sub get_qualified_table_name {
    my ( $self, $name ) = @_;
    return lc join '_', split( /::/, $self->{class} ), $name;
}

# The real method dies when the template is not bundled with the plugin
# (Koha/Plugin/.../Connector/<file>), so the stub checks that too.
sub get_template {
    my ( $self, $args ) = @_;
    ( my $module = $self->{class} . '.pm' ) =~ s{::}{/}g;
    ( my $dir = $INC{$module} // '' ) =~ s/\.pm\z//;
    die "template $args->{file} is not in $dir\n" unless -f "$dir/$args->{file}";
    return Koha::Plugins::Base::StubTemplate->new( $args->{file} );
}

sub output_html {
    my ( $self, $data ) = @_;
    $self->{output} = $data;
    return;
}

sub go_home {
    my ($self) = @_;
    $self->{redirect} = '/cgi-bin/koha/plugins/plugins-home.pl';
    return;
}

package Koha::Plugins::Base::StubTemplate;

# Records its parameters; `output` lists them instead of rendering anything.

sub new { my ( $class, $file ) = @_; return bless { file => $file, params => {} }, $class }

sub param {
    my ( $self, %params ) = @_;
    @{ $self->{params} }{ keys %params } = values %params;
    return;
}

sub output {
    my ($self) = @_;
    return join "\n", "template: $self->{file}",
        map { "$_=" . ( $self->{params}{$_} // '' ) } sort keys %{ $self->{params} };
}

1;
